/**
 * Strict decoding of one STUN message from one datagram (RFC 8489 §5, §14). Malformed input
 * throws a StunError and nothing else; the work is linear in the input, with at most
 * MAX_STUN_ATTRIBUTES attributes looked at.
 */
import { readU16, readU32 } from "../packet/bytes.ts";
import { decodeAttribute } from "./attribute_codec.ts";
import type { StunAttribute } from "./attributes.ts";
import {
  ATTRIBUTE_CODES,
  isComprehensionRequired,
  MAGIC_COOKIE,
  STUN_HEADER_LENGTH,
  TRANSACTION_ID_LENGTH,
} from "./constants.ts";
import { StunError } from "./errors.ts";
import { splitMessageType } from "./header.ts";
import { computeFingerprint } from "./integrity.ts";
import type { DecodedStunMessage, IntegrityPosition } from "./message.ts";

/** Most attributes a message may have (real ones have a dozen at most). */
export const MAX_STUN_ATTRIBUTES = 128;

const MESSAGE_INTEGRITY_SHA256 = ATTRIBUTE_CODES["MESSAGE-INTEGRITY-SHA256"];
const FINGERPRINT = ATTRIBUTE_CODES["FINGERPRINT"];

/**
 * Whether an attribute is ignored for where it lies (RFC 8489 §14.5, §14.6): after
 * MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count; after
 * MESSAGE-INTEGRITY-SHA256 only FINGERPRINT.
 */
function ignoredAfterIntegrity(code: number, afterSha1: boolean, afterSha256: boolean): boolean {
  if (code === FINGERPRINT) return false;
  if (afterSha256) return true;
  return afterSha1 && code !== MESSAGE_INTEGRITY_SHA256;
}

/**
 * Decodes a datagram holding exactly one STUN message. Checks the header (first two bits zero,
 * magic cookie, length a multiple of 4 equal to the bytes after the header), every attribute's
 * bounds and value, that FINGERPRINT (if any) is last and matches, and reports unknown
 * comprehension-required attributes in `unknownRequired` rather than refusing them. Padding
 * bytes are not checked: RFC 8489 §14 says receivers ignore their value. Attributes after
 * MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are bounds-checked and
 * dropped (§14.5). MESSAGE-INTEGRITY is located, not verified: that needs the key
 * (`verifyMessageIntegrity`). Throws StunError on malformed input.
 */
export function decodeStunMessage(bytes: Uint8Array): DecodedStunMessage {
  if (bytes.length < STUN_HEADER_LENGTH) {
    throw new StunError("truncated", `${bytes.length} bytes, a STUN header has 20`);
  }
  if ((bytes[0] & 0xc0) !== 0) {
    throw new StunError("not-stun", `first byte 0x${bytes[0].toString(16)} has a top bit set`);
  }
  if (readU32(bytes, 4) !== MAGIC_COOKIE) {
    throw new StunError("bad-magic-cookie", `cookie 0x${readU32(bytes, 4).toString(16)}`);
  }
  const length = readU16(bytes, 2);
  if (length % 4 !== 0 || length !== bytes.length - STUN_HEADER_LENGTH) {
    throw new StunError(
      "bad-length",
      `length field ${length} for ${bytes.length - STUN_HEADER_LENGTH} bytes after the header`,
    );
  }
  const { stunClass, method } = splitMessageType(readU16(bytes, 0));
  const transactionId = bytes.slice(8, 8 + TRANSACTION_ID_LENGTH);

  const attributes: StunAttribute[] = [];
  const unknownRequired: number[] = [];
  const unknownSeen = new Set<number>();
  let integrity: IntegrityPosition | undefined;
  let integritySha256: IntegrityPosition | undefined;
  let fingerprint: { offset: number; crc: number } | undefined;
  let count = 0;
  let offset = STUN_HEADER_LENGTH;
  while (offset < bytes.length) {
    if (++count > MAX_STUN_ATTRIBUTES) {
      throw new StunError("too-many-attributes", `more than ${MAX_STUN_ATTRIBUTES} attributes`);
    }
    // The body's length is a multiple of 4 and so is `offset`: an attribute header fits.
    const code = readU16(bytes, offset);
    const valueLength = readU16(bytes, offset + 2);
    const valueStart = offset + 4;
    if (valueStart + valueLength > bytes.length) {
      throw new StunError(
        "attribute-overflow",
        `attribute 0x${code.toString(16)} at ${offset} has ${valueLength} bytes, ` +
          `${bytes.length - valueStart} are left`,
      );
    }
    if (fingerprint) {
      throw new StunError("attribute-after-fingerprint", `attribute 0x${code.toString(16)}`);
    }
    // A multiple-of-4 message length and aligned attributes leave room for the padding.
    const next = valueStart + ((valueLength + 3) & ~3);
    const value = bytes.subarray(valueStart, valueStart + valueLength);
    if (!ignoredAfterIntegrity(code, integrity !== undefined, integritySha256 !== undefined)) {
      const attribute = decodeAttribute(code, value, transactionId);
      attributes.push(attribute);
      switch (attribute.type) {
        case "MESSAGE-INTEGRITY":
          integrity = { offset, hmac: attribute.hmac };
          break;
        case "MESSAGE-INTEGRITY-SHA256":
          integritySha256 = { offset, hmac: attribute.hmac };
          break;
        case "FINGERPRINT":
          fingerprint = { offset, crc: attribute.crc };
          break;
        case "unknown":
          if (isComprehensionRequired(code) && !unknownSeen.has(code)) {
            unknownSeen.add(code);
            unknownRequired.push(code);
          }
      }
    }
    offset = next;
  }
  if (fingerprint) {
    const expected = computeFingerprint(bytes, fingerprint.offset);
    if (expected !== fingerprint.crc) {
      throw new StunError(
        "bad-fingerprint",
        `FINGERPRINT 0x${fingerprint.crc.toString(16)}, the message gives 0x${
          expected.toString(16)
        }`,
      );
    }
  }
  return {
    stunClass,
    method,
    transactionId,
    attributes,
    bytes,
    unknownRequired,
    integrity,
    integritySha256,
    hasFingerprint: fingerprint !== undefined,
  };
}
