/**
 * The `struct virtio_net_hdr` that precedes every packet read from or written
 * to a TUN opened with `IFF_VNET_HDR`: ten bytes in native (little-endian)
 * order telling whether the packet is a GSO super-packet and where a partial
 * checksum is to be completed.
 */
import { TUN_OFFLOAD, VirtioNetHdr } from "../../../ffi/tun.ts";

/** The fields of a `virtio_net_hdr`. */
export interface VirtioHeader {
  /** `VIRTIO_NET_HDR_F_NEEDS_CSUM` and/or `VIRTIO_NET_HDR_F_DATA_VALID`. */
  flags: number;
  /** `VIRTIO_NET_HDR_GSO_*`, possibly with the ECN bit. */
  gsoType: number;
  /** Bytes of IP plus transport headers (a hint: the kernel's value is not trusted). */
  hdrLen: number;
  /** Payload bytes of each segment of a super-packet. */
  gsoSize: number;
  /** Where the checksummed part (the transport header) starts. */
  csumStart: number;
  /** Where the checksum field is, from `csumStart`. */
  csumOffset: number;
}

/** Bytes of a `virtio_net_hdr`. */
export const VIRTIO_HEADER_BYTES = VirtioNetHdr.size;

/** A header saying "a plain packet, nothing to do". */
export const PLAIN_HEADER: Readonly<VirtioHeader> = Object.freeze({
  flags: 0,
  gsoType: TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_NONE,
  hdrLen: 0,
  gsoSize: 0,
  csumStart: 0,
  csumOffset: 0,
});

/** Reads the header at `offset` of `bytes` (which must hold ten bytes there). */
export function decodeVirtioHeader(bytes: Uint8Array, offset = 0): VirtioHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, VirtioNetHdr.size);
  return {
    flags: view.getUint8(VirtioNetHdr.flags),
    gsoType: view.getUint8(VirtioNetHdr.gsoType),
    hdrLen: view.getUint16(VirtioNetHdr.hdrLen, true),
    gsoSize: view.getUint16(VirtioNetHdr.gsoSize, true),
    csumStart: view.getUint16(VirtioNetHdr.csumStart, true),
    csumOffset: view.getUint16(VirtioNetHdr.csumOffset, true),
  };
}

/** Writes `header` at `offset` of `target`. */
export function encodeVirtioHeader(header: VirtioHeader, target: Uint8Array, offset = 0): void {
  const view = new DataView(target.buffer, target.byteOffset + offset, VirtioNetHdr.size);
  view.setUint8(VirtioNetHdr.flags, header.flags);
  view.setUint8(VirtioNetHdr.gsoType, header.gsoType);
  view.setUint16(VirtioNetHdr.hdrLen, header.hdrLen, true);
  view.setUint16(VirtioNetHdr.gsoSize, header.gsoSize, true);
  view.setUint16(VirtioNetHdr.csumStart, header.csumStart, true);
  view.setUint16(VirtioNetHdr.csumOffset, header.csumOffset, true);
}
