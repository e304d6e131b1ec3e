/** What every parsed IP packet has, whatever its version. */

/** Fields common to parsed IPv4 and IPv6 packets; offsets are relative to `bytes`. */
export interface IpFields {
  /** The packet exactly as passed to the parser; nothing is copied. */
  bytes: Uint8Array;
  /** Source address: a 4- or 16-byte view into `bytes`. */
  src: Uint8Array;
  /** Destination address: a 4- or 16-byte view into `bytes`. */
  dst: Uint8Array;
  /** Upper-layer protocol: the IPv4 protocol, or the IPv6 next header after extension headers. */
  protocol: number;
  /** IPv4 TTL or IPv6 hop limit. */
  hopLimit: number;
  /** Length of the whole IP packet per its header; bytes past it in `bytes` are ignored. */
  packetLength: number;
  /** Offset of the upper-layer header (after IPv4 options / IPv6 extension headers). */
  payloadOffset: number;
  /** Length of the upper-layer data, from `payloadOffset` to `packetLength`. */
  payloadLength: number;
  /** Whether this is a fragment of a larger datagram (offset non-zero or more to come). */
  fragment: boolean;
  /** Fragment offset in bytes (0 when not fragmented). */
  fragmentOffset: number;
  /** The more-fragments flag. */
  moreFragments: boolean;
  /** IPv4 identification, or the IPv6 fragment header's identification (0 without one). */
  identification: number;
}
