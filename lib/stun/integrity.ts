/**
 * MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256 and FINGERPRINT: computing them over
 * a message's leading bytes with the header's length adjusted as RFC 8489 §14.5-14.7 say, the
 * short- and long-term credential keys, and checking a decoded message against a key.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { writeU16 } from "../packet/bytes.ts";
import { crc32 } from "./crc32.ts";
import { FINGERPRINT_XOR, STUN_HEADER_LENGTH } from "./constants.ts";
import type { DecodedStunMessage, IntegrityPosition } from "./message.ts";
import { saslprep } from "./saslprep.ts";

/** The hash of an integrity attribute. */
export type IntegrityAlgorithm = "sha1" | "sha256";

const utf8 = new TextEncoder();

/** The key of a short-term credential: the SASLprep'd password's UTF-8 (RFC 8489 §9.1.1). */
export function shortTermKey(password: string): Uint8Array {
  return utf8.encode(saslprep(password));
}

/**
 * The key of a long-term credential: MD5(username ":" realm ":" SASLprep(password))
 * (RFC 5389 §15.4; RFC 8489 §9.2.2 with the MD5 password algorithm). The username and realm
 * are used as they appear in the USERNAME and REALM attributes.
 */
export function longTermKey(username: string, realm: string, password: string): Uint8Array {
  const digest = createHash("md5").update(utf8.encode(`${username}:${realm}:${saslprep(password)}`))
    .digest();
  return new Uint8Array(digest);
}

/**
 * The HMAC an integrity attribute at `offset` of `bytes` must carry: over the header (its
 * length field set to end with that attribute, whose value is 20 bytes for SHA-1 and
 * `sha256Length` for SHA-256) and every byte from the header to `offset`.
 */
export function computeIntegrity(
  bytes: Uint8Array,
  offset: number,
  key: Uint8Array,
  algorithm: IntegrityAlgorithm,
  sha256Length = 32,
): Uint8Array {
  const valueLength = algorithm === "sha1" ? 20 : sha256Length;
  const header = bytes.slice(0, STUN_HEADER_LENGTH);
  writeU16(header, 2, offset + 4 + valueLength - STUN_HEADER_LENGTH);
  const hmac = createHmac(algorithm, key).update(header).update(
    bytes.subarray(STUN_HEADER_LENGTH, offset),
  ).digest();
  return Uint8Array.from(hmac.subarray(0, valueLength));
}

/**
 * The FINGERPRINT value for an attribute at `offset` of `bytes`, which must already hold the
 * header whose length field counts the FINGERPRINT: CRC-32 of `bytes[0..offset]` XOR "STUN".
 */
export function computeFingerprint(bytes: Uint8Array, offset: number): number {
  return (crc32(bytes.subarray(0, offset)) ^ FINGERPRINT_XOR) >>> 0;
}

function verifyAt(
  bytes: Uint8Array,
  position: IntegrityPosition | undefined,
  key: Uint8Array,
  algorithm: IntegrityAlgorithm,
): boolean {
  if (!position) return false;
  const expected = computeIntegrity(bytes, position.offset, key, algorithm, position.hmac.length);
  return expected.length === position.hmac.length && timingSafeEqual(expected, position.hmac);
}

/** Whether a decoded message has a MESSAGE-INTEGRITY that verifies with `key` (constant time). */
export function verifyMessageIntegrity(message: DecodedStunMessage, key: Uint8Array): boolean {
  return verifyAt(message.bytes, message.integrity, key, "sha1");
}

/**
 * Whether a decoded message has a MESSAGE-INTEGRITY-SHA256 that verifies with `key` (compared
 * over its length, which a sender may have truncated to 16 bytes or more).
 */
export function verifyMessageIntegritySha256(
  message: DecodedStunMessage,
  key: Uint8Array,
): boolean {
  return verifyAt(message.bytes, message.integritySha256, key, "sha256");
}
