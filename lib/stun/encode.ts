/**
 * Encoding of STUN messages: the header, the attributes in order each padded to 4 bytes, then
 * optionally MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, each computed with
 * the header's length field counting up to its own end (RFC 8489 §14.5-14.7).
 */
import { writeU16, writeU32 } from "../packet/bytes.ts";
import { encodeAttribute } from "./attribute_codec.ts";
import {
  ATTRIBUTE_CODES,
  MAGIC_COOKIE,
  STUN_HEADER_LENGTH,
  TRANSACTION_ID_LENGTH,
} from "./constants.ts";
import { MAX_METHOD, messageType } from "./header.ts";
import { computeFingerprint, computeIntegrity } from "./integrity.ts";
import type { StunMessage } from "./message.ts";

/** What to append to an encoded message, and how to pad. */
export interface StunEncodeOptions {
  /** Appends MESSAGE-INTEGRITY (HMAC-SHA1) with this key (`shortTermKey` / `longTermKey`). */
  integrityKey?: Uint8Array;
  /** Appends MESSAGE-INTEGRITY-SHA256 (32 bytes) with this key, after any MESSAGE-INTEGRITY. */
  integritySha256Key?: Uint8Array;
  /** Appends FINGERPRINT, last. */
  fingerprint?: boolean;
  /**
   * The byte padding is made of (default 0). Receivers ignore it; RFC 5769's vectors use 0x20
   * in some messages, which re-encoding them byte for byte needs.
   */
  paddingByte?: number;
}

/** Largest value of the 16-bit length field. */
const MAX_BODY = 0xffff;

/**
 * Encodes a message. Throws a RangeError for a misuse: a transaction ID that is not 12 bytes,
 * a method above 0xFFF, an attribute value no valid message carries (see `encodeAttribute`),
 * or a message longer than the length field can say.
 */
export function encodeStunMessage(
  message: StunMessage,
  options: StunEncodeOptions = {},
): Uint8Array {
  const { transactionId } = message;
  if (transactionId.length !== TRANSACTION_ID_LENGTH) {
    throw new RangeError(`transaction ID of ${transactionId.length} bytes, must be 12`);
  }
  if (!Number.isInteger(message.method) || message.method < 0 || message.method > MAX_METHOD) {
    throw new RangeError(`method ${message.method} is not 12 bits`);
  }
  const paddingByte = options.paddingByte ?? 0;
  const encoded = message.attributes.map((attribute) => encodeAttribute(attribute, transactionId));
  let total = STUN_HEADER_LENGTH;
  for (const { value } of encoded) {
    if (value.length > MAX_BODY) throw new RangeError(`attribute of ${value.length} bytes`);
    total += 4 + ((value.length + 3) & ~3);
  }
  if (options.integrityKey) total += 24;
  if (options.integritySha256Key) total += 36;
  if (options.fingerprint) total += 8;
  if (total - STUN_HEADER_LENGTH > MAX_BODY) {
    throw new RangeError(`message of ${total} bytes exceeds the 16-bit length field`);
  }

  const out = new Uint8Array(total);
  writeU16(out, 0, messageType(message.stunClass, message.method));
  writeU32(out, 4, MAGIC_COOKIE);
  out.set(transactionId, 8);
  let at = STUN_HEADER_LENGTH;
  const put = (code: number, value: Uint8Array) => {
    writeU16(out, at, code);
    writeU16(out, at + 2, value.length);
    out.set(value, at + 4);
    const end = at + 4 + value.length;
    at += 4 + ((value.length + 3) & ~3);
    out.fill(paddingByte, end, at);
  };
  for (const { code, value } of encoded) put(code, value);
  if (options.integrityKey) {
    const hmac = computeIntegrity(out, at, options.integrityKey, "sha1");
    put(ATTRIBUTE_CODES["MESSAGE-INTEGRITY"], hmac);
  }
  if (options.integritySha256Key) {
    const hmac = computeIntegrity(out, at, options.integritySha256Key, "sha256");
    put(ATTRIBUTE_CODES["MESSAGE-INTEGRITY-SHA256"], hmac);
  }
  if (options.fingerprint) {
    writeU16(out, 2, at + 8 - STUN_HEADER_LENGTH);
    const crc = new Uint8Array(4);
    writeU32(crc, 0, computeFingerprint(out, at));
    put(ATTRIBUTE_CODES["FINGERPRINT"], crc);
  }
  writeU16(out, 2, total - STUN_HEADER_LENGTH);
  return out;
}
