/**
 * Completing a transport checksum the kernel left partial
 * (`VIRTIO_NET_HDR_F_NEEDS_CSUM`): the checksum field already holds the
 * folded pseudo-header sum, so the one's complement of the sum from
 * `csumStart` to the end of the packet is the finished checksum.
 */
import { finishChecksum, sumWords } from "../../packet/mod.ts";

/** `csum_offset` of a UDP checksum (a TCP one is at 16). */
const UDP_CHECKSUM_OFFSET = 6;

/**
 * Writes the finished checksum into `packet` at `csumStart + csumOffset`.
 * Returns false (leaving `packet` alone) when the offsets do not fit it.
 */
export function completeChecksum(
  packet: Uint8Array,
  csumStart: number,
  csumOffset: number,
): boolean {
  const at = csumStart + csumOffset;
  if (at + 2 > packet.length) return false;
  let value = finishChecksum(sumWords(packet, csumStart, packet.length));
  // A computed UDP checksum of 0 is sent as 0xffff (0 means "none", RFC 768).
  if (value === 0 && csumOffset === UDP_CHECKSUM_OFFSET) value = 0xffff;
  packet[at] = value >> 8;
  packet[at + 1] = value & 0xff;
  return true;
}
