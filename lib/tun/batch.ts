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
  /** Int32 slots indexed by `ReaderState`. */
  state: SharedArrayBuffer;
}

/** Slots of the shared state. */
export const ReaderState = {
  /** Set to 1 by the device to stop the worker. */
  stop: 0,
  /** Batches posted and not yet handled; the worker waits while this is at its cap. */
  inFlight: 1,
  slots: 2,
} as const;
