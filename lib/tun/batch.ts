/**
 * The reader worker's batch format: packets back to back, each preceded by
 * its length as a little-endian u16. One batch is one transferred ArrayBuffer.
 */

/** Bytes of the length prefix before each packet. */
export const LENGTH_PREFIX = 2;

/** Calls `onPacket` with a view of each of the `count` packets in `buffer`. */
export function forEachPacket(
  buffer: ArrayBuffer,
  count: number,
  onPacket: (packet: Uint8Array) => void,
): void {
  const view = new DataView(buffer);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const length = view.getUint16(offset, true);
    onPacket(new Uint8Array(buffer, offset + LENGTH_PREFIX, length));
    offset += LENGTH_PREFIX + length;
  }
}

/** Messages from the reader worker to the device. */
export type ReaderMessage =
  | { type: "batch"; buffer: ArrayBuffer; count: number }
  | { type: "stopped" }
  | { type: "failed"; message: string; errno: number };

/** The device's one message to the reader worker: what to read and how to stop. */
export interface ReaderStart {
  fd: number;
  /** Readable once the device is closing. */
  eventFd: number;
  mtu: number;
  name: string;
  /** Each read starts with a `virtio_net_hdr` (offloads on): split super-packets, finish checksums. */
  vnetHeader: boolean;
  /** Int32 slots indexed by `ReaderState`. */
  state: SharedArrayBuffer;
}

/** Slots of the shared state. */
export const ReaderState = {
  /** Set to 1 by the device to stop the worker. */
  stop: 0,
  /** Batches posted and not yet handled; the worker waits while this is at its cap. */
  inFlight: 1,
  /** Reads that were TCP-over-IPv4 super-packets (gso_type TCPV4). */
  gsoTcp4Reads: 2,
  /** Reads that were TCP-over-IPv6 super-packets (gso_type TCPV6). */
  gsoTcp6Reads: 3,
  /** Reads that were UDP super-packets (gso_type UDP_L4). */
  gsoUdpReads: 4,
  /** Packets the super-packets were split into. */
  segmentsSplit: 5,
  /** Plain packets whose partial checksum (NEEDS_CSUM) was completed. */
  checksumsCompleted: 6,
  /** The longest read, in bytes of packet (virtio header excluded). */
  largestRead: 7,
  /** Reads dropped: a super-packet that could not be split, or a packet longer than the MTU. */
  dropped: 8,
  slots: 9,
} as const;
