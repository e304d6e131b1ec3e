/** The four-tuple that names a TCP connection, as text for callers and as a map key inside. */
import { formatIpAddress } from "../packet/mod.ts";

/** A connection's addresses as the peer's SYN carried them: `src` is the peer (the agent). */
export interface TcpFlow {
  /** 4 or 6: the IP version. */
  family: 4 | 6;
  /** The peer's address. */
  src: string;
  /** The peer's port. */
  srcPort: number;
  /** The address the peer connected to (ours). */
  dst: string;
  /** The port the peer connected to (ours). */
  dstPort: number;
}

/** A map key for the flow of a segment from `src`:`srcPort` to `dst`:`dstPort`. */
export function flowKey(
  src: Uint8Array,
  dst: Uint8Array,
  srcPort: number,
  dstPort: number,
): string {
  const codes = [srcPort, dstPort];
  for (let i = 0; i < src.length; i += 2) codes.push((src[i] << 8) | src[i + 1]);
  for (let i = 0; i < dst.length; i += 2) codes.push((dst[i] << 8) | dst[i + 1]);
  return String.fromCharCode(...codes);
}

/** The flow of a segment from `src`:`srcPort` to `dst`:`dstPort`. */
export function makeFlow(
  src: Uint8Array,
  dst: Uint8Array,
  srcPort: number,
  dstPort: number,
): TcpFlow {
  return {
    family: src.length === 4 ? 4 : 6,
    src: formatIpAddress(src),
    srcPort,
    dst: formatIpAddress(dst),
    dstPort,
  };
}

/** `src:port > dst:port`, IPv6 addresses in brackets, for messages. */
export function describeFlow(flow: TcpFlow): string {
  const at = (address: string, port: number) =>
    flow.family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
  return `${at(flow.src, flow.srcPort)} > ${at(flow.dst, flow.dstPort)}`;
}
