/** UDP (RFC 768) over IPv4 or IPv6: parse with checksum verification, and build whole packets. */
import { placeBytes, readU16, writeU16 } from "./bytes.ts";
import { checksumVerifies, finishChecksum, pseudoHeaderSum, sumWords } from "./checksum.ts";
import type { PacketError } from "./errors.ts";
import { type IpHeaderInit, ipHeaderLength, type IpPacket, writeIpHeader } from "./ip.ts";
import { PROTOCOL_UDP } from "./protocols.ts";

/** Length of the UDP header. */
export const UDP_HEADER_LENGTH = 8;

/** A parsed, verified UDP datagram; offsets are relative to the IP packet's `bytes`. */
export interface UdpDatagram {
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** The UDP length field: header plus payload. */
  length: number;
  /** The checksum as received (0 over IPv4 means none was sent). */
  checksum: number;
  /** Offset of the payload in the IP packet's `bytes`. */
  payloadOffset: number;
  /** The payload: a view into the packet, not a copy. */
  payload: Uint8Array;
}

/**
 * Parses the UDP datagram of a parsed IP packet. Rejects other protocols, fragments, a length
 * field below 8 or past the IP payload (bytes after it are ignored), a bad checksum, and a zero
 * checksum over IPv6; a zero checksum over IPv4 means "none" and is accepted. Never throws.
 */
export function parseUdp(ip: IpPacket): UdpDatagram | PacketError {
  if (ip.protocol !== PROTOCOL_UDP) return "wrong-protocol";
  if (ip.fragment) return "fragment";
  if (ip.payloadLength < UDP_HEADER_LENGTH) return "truncated";
  const bytes = ip.bytes;
  const start = ip.payloadOffset;
  const length = readU16(bytes, start + 4);
  if (length < UDP_HEADER_LENGTH || length > ip.payloadLength) return "bad-udp-length";
  const checksum = readU16(bytes, start + 6);
  if (checksum === 0) {
    if (ip.version === 6) return "missing-checksum";
  } else if (
    !checksumVerifies(
      bytes,
      start,
      start + length,
      pseudoHeaderSum(ip.src, ip.dst, PROTOCOL_UDP, length),
    )
  ) {
    return "bad-checksum";
  }
  return {
    srcPort: readU16(bytes, start),
    dstPort: readU16(bytes, start + 2),
    length,
    checksum,
    payloadOffset: start + UDP_HEADER_LENGTH,
    payload: bytes.subarray(start + UDP_HEADER_LENGTH, start + length),
  };
}

/** What a UDP/IP packet is built from; the address size (4 or 16 bytes) picks the IP version. */
export interface UdpPacketInit extends Omit<IpHeaderInit, "protocol" | "payloadLength"> {
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /**
   * The payload. If it already lies at `udpHeadersLength(src)` in the output buffer (received
   * straight there), it is not copied.
   */
  payload: Uint8Array;
}

/** IP plus UDP header bytes before the payload: 28 (IPv4) or 48 (IPv6). */
export function udpHeadersLength(src: Uint8Array): number {
  return ipHeaderLength(src) + UDP_HEADER_LENGTH;
}

/**
 * Writes a UDP/IP packet at `out[0]` with both checksums and returns its length. Throws a
 * RangeError for a misuse: bad address sizes, a datagram too large for its IP version, or an
 * `out` too small (it needs `udpHeadersLength(src) + payload.length` bytes).
 */
export function writeUdpPacket(out: Uint8Array, init: UdpPacketInit): number {
  const headerLength = ipHeaderLength(init.src);
  const udpLength = UDP_HEADER_LENGTH + init.payload.length;
  const total = headerLength + udpLength;
  if (udpLength > 0xffff) {
    throw new RangeError(`UDP datagram of ${udpLength} bytes exceeds the 65535-byte length field`);
  }
  if (out.length < total) {
    throw new RangeError(`buffer of ${out.length} bytes cannot hold a ${total}-byte UDP packet`);
  }
  placeBytes(out, headerLength + UDP_HEADER_LENGTH, init.payload);
  const pseudo = pseudoHeaderSum(init.src, init.dst, PROTOCOL_UDP, udpLength);
  writeIpHeader(out, {
    src: init.src,
    dst: init.dst,
    protocol: PROTOCOL_UDP,
    payloadLength: udpLength,
    hopLimit: init.hopLimit,
  });
  writeU16(out, headerLength, init.srcPort);
  writeU16(out, headerLength + 2, init.dstPort);
  writeU16(out, headerLength + 4, udpLength);
  writeU16(out, headerLength + 6, 0);
  // A computed zero is sent as 0xffff: zero means "no checksum" (RFC 768).
  const checksum = finishChecksum(sumWords(out, headerLength, total, pseudo)) || 0xffff;
  writeU16(out, headerLength + 6, checksum);
  return total;
}
