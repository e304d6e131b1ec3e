/**
 * Why a packet was rejected. Malformed packets are normal input: parsers return one of these
 * codes instead of throwing, so callers can count drops per code.
 */

/** Every rejection code, for building per-code counters. */
export const PACKET_ERRORS = [
  /** Shorter than the fixed header being parsed. */
  "truncated",
  /** The IP version nibble is neither 4 nor 6 (or not the one the parser expects). */
  "bad-version",
  /** IPv4 IHL below 5, or a header running past the packet. */
  "bad-header-length",
  /** The IP total / payload length is below the header or past the end of the buffer. */
  "bad-length",
  /** A header or upper-layer checksum does not verify. */
  "bad-checksum",
  /**
   * An IPv6 extension header runs off the packet, hop-by-hop is not first, or a routing
   * header has segments left (this node would be a hop, not the destination).
   */
  "bad-extension-header",
  /** A fragment (not a whole datagram), where a whole one is needed. */
  "fragment",
  /** The upper-layer protocol is not the one the parser handles. */
  "wrong-protocol",
  /** The UDP length field is below 8 or past the IP payload. */
  "bad-udp-length",
  /** UDP over IPv6 with a zero checksum (RFC 8200 §8.1 forbids it). */
  "missing-checksum",
  /** TCP data offset below 5 words or past the segment. */
  "bad-data-offset",
  /** An ICMP message that is not an echo request, where one is needed. */
  "not-echo-request",
  /** No ICMP error may be sent about this packet (RFC 1122 §3.2.2, RFC 4443 §2.4(e)). */
  "error-suppressed",
] as const;

/** A rejection code: a plain string, so results discriminate with `typeof r === "string"`. */
export type PacketError = typeof PACKET_ERRORS[number];

/** Whether a parse or build result is a rejection code rather than a value. */
export function isPacketError(result: unknown): result is PacketError {
  return typeof result === "string";
}
