/**
 * The STUN header (RFC 8489 §5): the message type (class and method interleaved in 14 bits),
 * the length of what follows, the magic cookie and the 96-bit transaction ID; and the test
 * that tells a STUN datagram from a QUIC one on a shared socket.
 */
import { readU16, readU32 } from "../packet/bytes.ts";
import {
  CLASS_BITS,
  CLASSES,
  MAGIC_COOKIE,
  STUN_HEADER_LENGTH,
  type StunClass,
} from "./constants.ts";

/** Largest method number: 12 bits. */
export const MAX_METHOD = 0xfff;

/** The 14-bit message type of a class and method (M11..M7 C1 M6..M4 C0 M3..M0). */
export function messageType(stunClass: StunClass, method: number): number {
  const c = CLASS_BITS[stunClass];
  return ((method & 0xf80) << 2) | ((c & 2) << 7) | ((method & 0x70) << 1) | ((c & 1) << 4) |
    (method & 0xf);
}

/** The class and method of a 14-bit message type. */
export function splitMessageType(type: number): { stunClass: StunClass; method: number } {
  const c = ((type >> 7) & 2) | ((type >> 4) & 1);
  const method = ((type >> 2) & 0xf80) | ((type >> 1) & 0x70) | (type & 0xf);
  return { stunClass: CLASSES[c], method };
}

/**
 * Whether a datagram looks like one whole STUN message: at least a header, the first two bits
 * zero (QUIC sets 0x40, the fixed bit, or 0x80, the long-header bit), the magic cookie at
 * bytes 4..8, and a length field that is a multiple of 4 and equal to the bytes after the
 * header. Cheap and allocation-free: for demultiplexing, not validation (decode for that).
 */
export function isStunMessage(bytes: Uint8Array): boolean {
  if (bytes.length < STUN_HEADER_LENGTH || (bytes[0] & 0xc0) !== 0) return false;
  if (readU32(bytes, 4) !== MAGIC_COOKIE) return false;
  const length = readU16(bytes, 2);
  return (length & 3) === 0 && length === bytes.length - STUN_HEADER_LENGTH;
}
