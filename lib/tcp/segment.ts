/** Building outgoing TCP/IP packets: a connection's segments and RSTs for unknown flows. */
import {
  type IpPacket,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  tcpHeadersLength,
  type TcpOptions,
  type TcpSegment,
  writeTcpPacket,
} from "../packet/mod.ts";

/** Our end and the peer's end of a connection. */
export interface Endpoints {
  local: Uint8Array;
  remote: Uint8Array;
  localPort: number;
  remotePort: number;
}

/** One outgoing segment; the payload (if any) is written by `fill` straight into the packet. */
export interface OutgoingSegment {
  seq: number;
  ack: number;
  /** TCP_* flags. */
  flags: number;
  /** The raw 16-bit window field (already shifted by our window scale). */
  window: number;
  options?: TcpOptions;
  /** Payload bytes; `fill` must write exactly this many at `out[at]`. */
  payloadLength?: number;
  fill?: (out: Uint8Array, at: number) => void;
}

/**
 * A packet from `ends.local` to `ends.remote` carrying `segment`, checksums computed: a new
 * buffer, or the start of `into` when given (reused: its header bytes are cleared first).
 */
export function buildSegment(
  ends: Endpoints,
  segment: OutgoingSegment,
  into?: Uint8Array,
): Uint8Array {
  const headers = tcpHeadersLength(ends.local, segment.options);
  const length = segment.payloadLength ?? 0;
  let out: Uint8Array;
  if (into !== undefined && into.length >= headers + length) {
    out = into.subarray(0, headers + length);
    out.fill(0, 0, headers);
  } else {
    out = new Uint8Array(headers + length);
  }
  if (length > 0) segment.fill?.(out, headers);
  writeTcpPacket(out, {
    src: ends.local,
    dst: ends.remote,
    srcPort: ends.localPort,
    dstPort: ends.remotePort,
    seq: segment.seq,
    ack: segment.ack,
    flags: segment.flags,
    window: segment.window,
    options: segment.options,
    payload: length > 0 ? out.subarray(headers, headers + length) : undefined,
  });
  return out;
}

/**
 * The RST answering `seg` (received in `ip`) when no connection takes it (RFC 9293 §3.10.7.1):
 * `<SEQ=SEG.ACK><CTL=RST>` if it carried an ACK, else `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
 * Undefined for a RST, which is never answered.
 */
export function resetFor(ip: IpPacket, seg: TcpSegment): Uint8Array | undefined {
  if (seg.flags & TCP_RST) return undefined;
  const ends = { local: ip.dst, remote: ip.src, localPort: seg.dstPort, remotePort: seg.srcPort };
  if (seg.flags & TCP_ACK) {
    return buildSegment(ends, { seq: seg.ack, ack: 0, flags: TCP_RST, window: 0 });
  }
  const length = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) +
    (seg.flags & TCP_FIN ? 1 : 0);
  return buildSegment(ends, {
    seq: 0,
    ack: (seg.seq + length) >>> 0,
    flags: TCP_RST | TCP_ACK,
    window: 0,
  });
}
