/**
 * Splitting a GSO super-packet read from the TUN (TCP over IPv4/IPv6, or
 * UDP_L4) into the packets it stands for, each `gsoSize` payload bytes (the
 * last may be shorter) behind a copy of the headers, fixed up as the kernel's
 * own segmentation would: IP total/payload length, IPv4 ID (+1 a segment) and
 * header checksum, TCP sequence numbers, FIN/PSH on the last segment only, CWR
 * on the first only, UDP length, and a complete TCP/UDP checksum.
 */
import { TUN_OFFLOAD } from "../../../ffi/tun.ts";
import { finishChecksum, internetChecksum, pseudoHeaderSum, sumWords } from "../../packet/mod.ts";
import type { VirtioHeader } from "./virtio_header.ts";

/** Where the splitter puts segments: returns a view of exactly `length` bytes to fill. */
export interface SegmentSink {
  segment(length: number): Uint8Array;
}

/** Why a super-packet could not be split (it is then dropped). */
export type SplitError =
  | "unsupported-gso-type"
  | "ip-version-mismatch"
  | "bad-ip-header"
  | "bad-transport-header"
  | "zero-gso-size";

const TCP = 6;
const UDP = 17;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;
const UDP_HEADER_BYTES = 8;

/** Whether `gsoType` (ECN bit ignored) is a super-packet the splitter handles. */
export function isGsoType(gsoType: number): boolean {
  const type = gsoType & ~TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_ECN;
  return type === TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV4 ||
    type === TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV6 ||
    type === TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_UDP_L4;
}

/**
 * Splits `packet` (an IP super-packet without its virtio header) into sink
 * segments; returns how many, or why it cannot. `packet` is not modified.
 */
export function splitGso(
  packet: Uint8Array,
  header: VirtioHeader,
  sink: SegmentSink,
): number | SplitError {
  const type = header.gsoType & ~TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_ECN;
  const protocol = type === TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_UDP_L4 ? UDP : TCP;
  if (!isGsoType(type)) return "unsupported-gso-type";
  if (header.gsoSize === 0) return "zero-gso-size";
  if (packet.length < 20) return "bad-ip-header";
  const version = packet[0] >> 4;
  const v4 = version === 4;
  if (
    (version !== 4 && version !== 6) ||
    (type === TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV4 && !v4) ||
    (type === TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV6 && v4)
  ) {
    return "ip-version-mismatch";
  }
  // The transport header starts right after the IP header: IPv4 options are
  // allowed, IPv6 extension headers are not (the kernel's TSO never adds them).
  const ipLength = header.csumStart;
  if (
    v4
      ? ipLength !== (packet[0] & 0xf) * 4 || ipLength < 20 || packet[9] !== protocol
      : ipLength !== 40 || packet.length < 40 || packet[6] !== protocol
  ) {
    return "bad-ip-header";
  }
  // The kernel's hdr_len may cover more than the headers: recompute it.
  let headersLength: number;
  if (protocol === TCP) {
    if (packet.length < ipLength + 20) return "bad-transport-header";
    const tcpLength = (packet[ipLength + 12] >> 4) * 4;
    if (tcpLength < 20) return "bad-transport-header";
    headersLength = ipLength + tcpLength;
  } else {
    headersLength = ipLength + UDP_HEADER_BYTES;
  }
  if (packet.length <= headersLength) return "bad-transport-header";

  const view = new DataView(packet.buffer, packet.byteOffset, packet.length);
  const addressBytes = v4 ? 4 : 16;
  const sourceAt = v4 ? 12 : 8;
  const source = packet.subarray(sourceAt, sourceAt + addressBytes);
  const destination = packet.subarray(sourceAt + addressBytes, sourceAt + 2 * addressBytes);
  const firstId = v4 ? view.getUint16(4) : 0;
  const firstSeq = protocol === TCP ? view.getUint32(ipLength + 4) : 0;
  const checksumAt = ipLength + (protocol === TCP ? 16 : 6);
  const transportHeaderLength = headersLength - ipLength;

  let count = 0;
  for (let dataAt = headersLength; dataAt < packet.length; dataAt += header.gsoSize, count++) {
    const dataEnd = Math.min(dataAt + header.gsoSize, packet.length);
    const last = dataEnd === packet.length;
    const length = headersLength + dataEnd - dataAt;
    const out = sink.segment(length);
    out.set(packet.subarray(0, headersLength));
    out.set(packet.subarray(dataAt, dataEnd), headersLength);
    const o = new DataView(out.buffer, out.byteOffset, length);
    if (v4) {
      o.setUint16(2, length);
      o.setUint16(4, (firstId + count) & 0xffff);
      o.setUint16(10, 0);
      o.setUint16(10, internetChecksum(out, 0, ipLength));
    } else {
      o.setUint16(4, length - ipLength);
    }
    if (protocol === TCP) {
      o.setUint32(ipLength + 4, (firstSeq + count * header.gsoSize) >>> 0);
      let flags = out[ipLength + 13];
      if (!last) flags &= ~(TCP_FIN | TCP_PSH);
      if (count > 0) flags &= ~TCP_CWR;
      out[ipLength + 13] = flags;
    } else {
      o.setUint16(ipLength + 4, transportHeaderLength + dataEnd - dataAt);
    }
    o.setUint16(checksumAt, 0);
    const pseudo = pseudoHeaderSum(source, destination, protocol, length - ipLength);
    let checksum = finishChecksum(sumWords(out, ipLength, length, pseudo));
    if (checksum === 0 && protocol === UDP) checksum = 0xffff;
    o.setUint16(checksumAt, checksum);
  }
  return count;
}
