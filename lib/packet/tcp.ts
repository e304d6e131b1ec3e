/**
 * TCP segments (RFC 9293) over IPv4 or IPv6: parse with checksum verification, and build
 * whole packets. Sequence numbers are unsigned 32-bit; compare them with `tcp_seq.ts`.
 */
import { placeBytes, readU16, readU32, writeU16, writeU32 } from "./bytes.ts";
import { checksumVerifies, finishChecksum, pseudoHeaderSum, sumWords } from "./checksum.ts";
import type { PacketError } from "./errors.ts";
import { type IpHeaderInit, ipHeaderLength, type IpPacket, writeIpHeader } from "./ip.ts";
import { PROTOCOL_TCP } from "./protocols.ts";
import {
  parseTcpOptions,
  type TcpOptions,
  tcpOptionsLength,
  writeTcpOptions,
} from "./tcp_options.ts";

/** Length of a TCP header without options. */
export const TCP_HEADER_LENGTH = 20;

/** FIN flag: no more data from the sender. */
export const TCP_FIN = 0x01;
/** SYN flag: synchronize sequence numbers. */
export const TCP_SYN = 0x02;
/** RST flag: reset the connection. */
export const TCP_RST = 0x04;
/** PSH flag: push. */
export const TCP_PSH = 0x08;
/** ACK flag: the acknowledgment field is significant. */
export const TCP_ACK = 0x10;
/** URG flag: the urgent pointer is significant. */
export const TCP_URG = 0x20;
/** ECE flag: ECN echo (RFC 3168). */
export const TCP_ECE = 0x40;
/** CWR flag: congestion window reduced (RFC 3168). */
export const TCP_CWR = 0x80;

/** A parsed, verified TCP segment; offsets are relative to the IP packet's `bytes`. */
export interface TcpSegment {
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** Sequence number (unsigned 32-bit). */
  seq: number;
  /** Acknowledgment number (unsigned 32-bit; meaningful only with TCP_ACK). */
  ack: number;
  /** Header length in bytes (data offset × 4). */
  headerLength: number;
  /** The flag byte: TCP_FIN | TCP_SYN | ... (the reserved/AE bits are not included). */
  flags: number;
  /** The raw 16-bit window field, not yet shifted by the window scale. */
  window: number;
  /** The checksum as received (already verified). */
  checksum: number;
  /** Urgent pointer. */
  urgent: number;
  /** The known options (read-only; shared when there are none). */
  options: Readonly<TcpOptions>;
  /** Offset of the payload in the IP packet's `bytes`. */
  payloadOffset: number;
  /** The payload: a view into the packet, not a copy. */
  payload: Uint8Array;
}

/**
 * Parses the TCP segment of a parsed IP packet. Rejects other protocols, fragments, a segment
 * shorter than 20 bytes, a data offset below 5 words or past the segment, and a bad checksum.
 * Options are parsed leniently (see `parseTcpOptions`). Never throws.
 */
export function parseTcp(ip: IpPacket): TcpSegment | PacketError {
  if (ip.protocol !== PROTOCOL_TCP) return "wrong-protocol";
  if (ip.fragment) return "fragment";
  if (ip.payloadLength < TCP_HEADER_LENGTH) return "truncated";
  const bytes = ip.bytes;
  const start = ip.payloadOffset;
  const end = start + ip.payloadLength;
  const headerLength = (bytes[start + 12] >> 4) * 4;
  if (headerLength < TCP_HEADER_LENGTH || headerLength > ip.payloadLength) {
    return "bad-data-offset";
  }
  const pseudo = pseudoHeaderSum(ip.src, ip.dst, PROTOCOL_TCP, ip.payloadLength);
  if (!checksumVerifies(bytes, start, end, pseudo)) return "bad-checksum";
  return {
    srcPort: readU16(bytes, start),
    dstPort: readU16(bytes, start + 2),
    seq: readU32(bytes, start + 4),
    ack: readU32(bytes, start + 8),
    headerLength,
    flags: bytes[start + 13],
    window: readU16(bytes, start + 14),
    checksum: readU16(bytes, start + 16),
    urgent: readU16(bytes, start + 18),
    options: parseTcpOptions(bytes, start + TCP_HEADER_LENGTH, start + headerLength),
    payloadOffset: start + headerLength,
    payload: bytes.subarray(start + headerLength, end),
  };
}

/** What a TCP/IP packet is built from; the address size (4 or 16 bytes) picks the IP version. */
export interface TcpPacketInit extends Omit<IpHeaderInit, "protocol" | "payloadLength"> {
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** Sequence number (taken modulo 2^32). */
  seq: number;
  /** Acknowledgment number (taken modulo 2^32). */
  ack: number;
  /** TCP_* flags. */
  flags: number;
  /** The raw 16-bit window field: the caller shifts by the window scale (never on SYN). */
  window: number;
  /** Urgent pointer (default 0). */
  urgent?: number;
  /** Options to write (default none). */
  options?: TcpOptions;
  /**
   * The payload (default none). If it already lies at `tcpHeadersLength(src, options)` in the
   * output buffer (received straight there), it is not copied.
   */
  payload?: Uint8Array;
}

/** IP plus TCP header bytes before the payload for these addresses and options. */
export function tcpHeadersLength(src: Uint8Array, options?: TcpOptions): number {
  return ipHeaderLength(src) + TCP_HEADER_LENGTH + tcpOptionsLength(options);
}

/**
 * Writes a TCP/IP packet at `out[0]` with its checksums and returns its length. Throws a
 * RangeError for a misuse: bad address sizes, a window above 65535 (unscaled), options over
 * 40 bytes, a segment too large for its IP version, or an `out` that is too small.
 */
export function writeTcpPacket(out: Uint8Array, init: TcpPacketInit): number {
  if (!(init.window >= 0 && init.window <= 0xffff)) {
    throw new RangeError(`TCP window ${init.window} does not fit 16 bits: scale it first`);
  }
  const ipLength = ipHeaderLength(init.src);
  const tcpHeaderLength = TCP_HEADER_LENGTH + tcpOptionsLength(init.options);
  const payloadLength = init.payload?.length ?? 0;
  const segmentLength = tcpHeaderLength + payloadLength;
  const total = ipLength + segmentLength;
  if (out.length < total) {
    throw new RangeError(`buffer of ${out.length} bytes cannot hold a ${total}-byte TCP packet`);
  }
  if (init.payload) placeBytes(out, ipLength + tcpHeaderLength, init.payload);
  const pseudo = pseudoHeaderSum(init.src, init.dst, PROTOCOL_TCP, segmentLength);
  writeIpHeader(out, {
    src: init.src,
    dst: init.dst,
    protocol: PROTOCOL_TCP,
    payloadLength: segmentLength,
    hopLimit: init.hopLimit,
  });
  writeU16(out, ipLength, init.srcPort);
  writeU16(out, ipLength + 2, init.dstPort);
  writeU32(out, ipLength + 4, init.seq >>> 0);
  writeU32(out, ipLength + 8, init.ack >>> 0);
  out[ipLength + 12] = (tcpHeaderLength / 4) << 4;
  out[ipLength + 13] = init.flags;
  writeU16(out, ipLength + 14, init.window);
  writeU16(out, ipLength + 16, 0);
  writeU16(out, ipLength + 18, init.urgent ?? 0);
  writeTcpOptions(out, ipLength + TCP_HEADER_LENGTH, init.options);
  writeU16(out, ipLength + 16, finishChecksum(sumWords(out, ipLength, total, pseudo)));
  return total;
}
