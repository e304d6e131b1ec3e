/**
 * A Linux TUN device: created and configured with ioctls, read by a worker
 * thread, written synchronously from the caller's thread. The kernel deletes
 * the interface (and its addresses and routes) when `close()` closes the last
 * descriptor. With offloads on, reads hand on MTU-sized packets split from
 * the kernel's super-packets, and queued writes coalesce TCP segments (GRO).
 */
import { getLogger } from "@logtape/logtape";
import { libc, LINUX, syscallError } from "../../ffi/libc.ts";
import { TUN_OFFLOAD } from "../../ffi/tun.ts";
import { ReaderState } from "./batch.ts";
import { parseTunConfig, type TunOptions } from "./config.ts";
import { configureTun, openTunWithOffloads } from "./kernel.ts";
import { encodeWrite, planWrites } from "./offload/tcp_coalesce.ts";
import { PLAIN_HEADER, VIRTIO_HEADER_BYTES } from "./offload/virtio_header.ts";
import { encodeVirtioHeader } from "./offload/virtio_header.ts";
import { TunReader } from "./reader.ts";
import { tunUnsupportedReason } from "./support.ts";

/** Bytes of packets `queue` holds for one batch before it writes them at once. */
const QUEUE_ARENA_BYTES = 256 * 1024;

const log = getLogger(["ztna", "tun"]);

/** Counters of a device (offload ones stay 0 in plain mode). */
export interface TunStats {
  /** Super-packets read, by gso_type. */
  gsoTcp4Reads: number;
  gsoTcp6Reads: number;
  gsoUdpReads: number;
  /** Packets the super-packets read were split into. */
  segmentsSplit: number;
  /** Plain packets read whose partial checksum was completed. */
  checksumsCompleted: number;
  /** The longest packet read (virtio header excluded). */
  largestRead: number;
  /** Reads dropped (a super-packet that could not be split, or longer than the MTU). */
  readsDropped: number;
  /** Packets handed to `write`/`writeBatch`/`queue`. */
  packetsWritten: number;
  /** `write()` system calls made. */
  writes: number;
  /** Writes that were coalesced TCP super-packets, and the packets they carried. */
  superPacketsWritten: number;
  segmentsCoalesced: number;
}

/** The names of the `TUN_F_*` flags in `offloads`, e.g. `csum tso4 tso6`. */
export function describeOffloads(offloads: number): string {
  const names: [number, string][] = [
    [TUN_OFFLOAD.TUN_F_CSUM, "csum"],
    [TUN_OFFLOAD.TUN_F_TSO4, "tso4"],
    [TUN_OFFLOAD.TUN_F_TSO6, "tso6"],
    [TUN_OFFLOAD.TUN_F_USO4, "uso4"],
    [TUN_OFFLOAD.TUN_F_USO6, "uso6"],
  ];
  return names.filter(([flag]) => offloads & flag).map(([, name]) => name).join(" ") || "none";
}

/** An open TUN interface carrying raw IPv4/IPv6 packets (no packet-information header). */
export class TunDevice {
  /** The interface name the kernel assigned. */
  readonly name: string;
  /** The configured MTU: no packet read is longer, none written should be. */
  readonly mtu: number;
  /** The `TUN_F_*` offloads on; 0 in plain mode (no virtio headers). */
  readonly offloads: number;
  #fd: number;
  readonly #eventFd: number;
  #reader: TunReader | undefined;
  #closing: Promise<void> | undefined;
  /** Virtio header plus packet, for writes in offload mode. */
  readonly #scratch: Uint8Array | undefined;
  /** Packets `queue`d for the next batch: views of `#arena`, or copies when it is full. */
  #queued: Uint8Array[] = [];
  readonly #arena = new Uint8Array(QUEUE_ARENA_BYTES);
  #arenaUsed = 0;
  #flushScheduled = false;
  readonly #written = { packets: 0, writes: 0, superPackets: 0, coalesced: 0 };

  private constructor(fd: number, eventFd: number, name: string, mtu: number, offloads: number) {
    this.#fd = fd;
    this.#eventFd = eventFd;
    this.name = name;
    this.mtu = mtu;
    this.offloads = offloads;
    if (offloads) this.#scratch = new Uint8Array(VIRTIO_HEADER_BYTES + 0xffff);
  }

  /**
   * Creates the interface, sets its MTU, brings it up and adds `addresses` and
   * `routes`. Throws a clear error without root/CAP_NET_ADMIN, on macOS and
   * other non-Linux systems, and for invalid options; nothing is left behind
   * on failure. With `offloads`, logs which offloads the kernel accepted.
   */
  static create(options: TunOptions = {}): TunDevice {
    const unsupported = tunUnsupportedReason(Deno.build.os, options.name ?? "ztna0");
    if (unsupported) throw new Error(unsupported);
    const config = parseTunConfig(options);
    const { fd, name, offloads } = openTunWithOffloads(config.name, config.offloads);
    let eventFd = -1;
    try {
      configureTun(name, config);
      eventFd = libc().eventfd(0, LINUX.EFD_CLOEXEC | LINUX.EFD_NONBLOCK);
      if (eventFd < 0) {
        throw new Error(`creating TUN device ${name}`, { cause: syscallError("eventfd") });
      }
    } catch (error) {
      libc().close(fd);
      throw error;
    }
    if (config.offloads) {
      log.info("TUN device {name} offloads: {offloads}", {
        name,
        offloads: offloads ? describeOffloads(offloads) : "none (the kernel refused; plain mode)",
      });
    }
    return new TunDevice(fd, eventFd, name, config.mtu, offloads);
  }

  /**
   * Starts reading: `onPacket` is called on this thread with each packet read
   * (an IPv4 or IPv6 packet of at most the MTU it may keep; it must not
   * throw). Callable once. The promise resolves when `close()` has stopped the
   * reader and rejects if reading fails (e.g. the interface was deleted under
   * the device).
   */
  packets(onPacket: (packet: Uint8Array) => void): Promise<void> {
    if (this.#fd < 0) throw new Error(`TUN device ${this.name} is closed`);
    if (this.#reader) throw new Error(`TUN device ${this.name} is already being read`);
    this.#reader = new TunReader(
      {
        fd: this.#fd,
        eventFd: this.#eventFd,
        mtu: this.mtu,
        name: this.name,
        vnetHeader: this.offloads !== 0,
      },
      onPacket,
    );
    return this.#reader.done;
  }

  /** Writes one IPv4 or IPv6 packet into the kernel, as if it arrived on this interface. */
  write(packet: Uint8Array): void {
    this.#checkOpen();
    this.#written.packets++;
    if (!this.#scratch) {
      this.#writeRaw(packet, packet.length);
      return;
    }
    encodeVirtioHeader(PLAIN_HEADER, this.#scratch);
    this.#scratch.set(packet, VIRTIO_HEADER_BYTES);
    this.#writeRaw(this.#scratch, VIRTIO_HEADER_BYTES + packet.length);
  }

  /**
   * Writes `packets` into the kernel; with offloads on, consecutive TCP
   * segments of one flow go as one super-packet (fewer, larger packets for
   * the kernel's TCP). A failed write does not stop the others: the first
   * failure is thrown once all were tried.
   */
  writeBatch(packets: readonly Uint8Array[]): void {
    this.#checkOpen();
    let failure: unknown;
    const attempt = (write: () => void) => {
      try {
        write();
      } catch (error) {
        failure ??= error;
      }
    };
    const scratch = this.#scratch;
    if (!scratch) {
      for (const packet of packets) attempt(() => this.write(packet));
    } else {
      this.#written.packets += packets.length;
      for (const group of planWrites(packets)) {
        const length = encodeWrite(group, scratch);
        if (group.packets.length > 1) {
          this.#written.superPackets++;
          this.#written.coalesced += group.packets.length;
        }
        attempt(() => this.#writeRaw(scratch, length, group.packets.length));
      }
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * Copies `packet` into a batch written (see `writeBatch`) once the current
   * task's synchronous work is done, so packets arriving together, e.g. the
   * datagrams of one received UDP batch, are coalesced. Write errors are
   * passed to `onError`.
   */
  queue(packet: Uint8Array, onError: (error: Error) => void): void {
    // Copied into one reused arena (no allocation per packet); a full arena is written now.
    if (this.#arenaUsed + packet.length > this.#arena.length) this.#writeQueued(onError);
    if (packet.length <= this.#arena.length) {
      const copy = this.#arena.subarray(this.#arenaUsed, this.#arenaUsed + packet.length);
      copy.set(packet);
      this.#arenaUsed += packet.length;
      this.#queued.push(copy);
    } else {
      this.#queued.push(packet.slice());
    }
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#writeQueued(onError);
    });
  }

  #writeQueued(onError: (error: Error) => void): void {
    const batch = this.#queued;
    this.#queued = [];
    try {
      if (this.#fd >= 0 && batch.length > 0) this.writeBatch(batch);
    } catch (error) {
      onError(error as Error);
    } finally {
      this.#arenaUsed = 0;
    }
  }

  /** The device's counters. */
  stats(): TunStats {
    const read = (slot: number) => this.#reader?.counter(slot) ?? 0;
    return {
      gsoTcp4Reads: read(ReaderState.gsoTcp4Reads),
      gsoTcp6Reads: read(ReaderState.gsoTcp6Reads),
      gsoUdpReads: read(ReaderState.gsoUdpReads),
      segmentsSplit: read(ReaderState.segmentsSplit),
      checksumsCompleted: read(ReaderState.checksumsCompleted),
      largestRead: read(ReaderState.largestRead),
      readsDropped: read(ReaderState.dropped),
      packetsWritten: this.#written.packets,
      writes: this.#written.writes,
      superPacketsWritten: this.#written.superPackets,
      segmentsCoalesced: this.#written.coalesced,
    };
  }

  #checkOpen(): void {
    if (this.#fd < 0) throw new Error(`TUN device ${this.name} is closed`);
  }

  #writeRaw(bytes: Uint8Array, length: number, packets = 1): void {
    this.#written.writes++;
    if (libc().write(this.#fd, bytes, BigInt(length)) < 0) {
      const what = packets > 1 ? `${packets} coalesced packets` : "packet";
      throw new Error(`writing a ${length}-byte ${what} to TUN device ${this.name}`, {
        cause: syscallError("write"),
      });
    }
  }

  /** Stops the reader, waits for its worker to end, then closes the descriptors. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    try {
      await this.#reader?.stop();
    } finally {
      libc().close(this.#fd);
      libc().close(this.#eventFd);
      this.#fd = -1;
    }
  }
}
