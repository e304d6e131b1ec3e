/**
 * A Linux TUN device: created and configured with ioctls, read by a worker
 * thread, written synchronously from the caller's thread. The kernel deletes
 * the interface (and its addresses and routes) when `close()` closes the last
 * descriptor.
 */
import { libc, LINUX, syscallError } from "../../ffi/libc.ts";
import { parseTunConfig, type TunOptions } from "./config.ts";
import { configureTun, openTun } from "./kernel.ts";
import { TunReader } from "./reader.ts";
import { tunUnsupportedReason } from "./support.ts";

/** An open TUN interface carrying raw IPv4/IPv6 packets (no packet-information header). */
export class TunDevice {
  /** The interface name the kernel assigned. */
  readonly name: string;
  /** The configured MTU: no packet read is longer, none written should be. */
  readonly mtu: number;
  #fd: number;
  readonly #eventFd: number;
  #reader: TunReader | undefined;
  #closing: Promise<void> | undefined;

  private constructor(fd: number, eventFd: number, name: string, mtu: number) {
    this.#fd = fd;
    this.#eventFd = eventFd;
    this.name = name;
    this.mtu = mtu;
  }

  /**
   * Creates the interface, sets its MTU, brings it up and adds `addresses` and
   * `routes`. Throws a clear error without root/CAP_NET_ADMIN, on macOS and
   * other non-Linux systems, and for invalid options; nothing is left behind
   * on failure.
   */
  static create(options: TunOptions = {}): TunDevice {
    const unsupported = tunUnsupportedReason(Deno.build.os, options.name ?? "ztna0");
    if (unsupported) throw new Error(unsupported);
    const config = parseTunConfig(options);
    const { fd, name } = openTun(config.name);
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
    return new TunDevice(fd, eventFd, name, config.mtu);
  }

  /**
   * Starts reading: `onPacket` is called on this thread with each packet read
   * (an IPv4 or IPv6 packet it may keep; it must not throw). Callable once.
   * The promise resolves when `close()` has stopped the reader and rejects if
   * reading fails (e.g. the interface was deleted under the device).
   */
  packets(onPacket: (packet: Uint8Array) => void): Promise<void> {
    if (this.#fd < 0) throw new Error(`TUN device ${this.name} is closed`);
    if (this.#reader) throw new Error(`TUN device ${this.name} is already being read`);
    this.#reader = new TunReader(
      { fd: this.#fd, eventFd: this.#eventFd, mtu: this.mtu, name: this.name },
      onPacket,
    );
    return this.#reader.done;
  }

  /** Writes one IPv4 or IPv6 packet into the kernel, as if it arrived on this interface. */
  write(packet: Uint8Array): void {
    if (this.#fd < 0) throw new Error(`TUN device ${this.name} is closed`);
    if (libc().write(this.#fd, packet, BigInt(packet.length)) < 0) {
      throw new Error(`writing a ${packet.length}-byte packet to TUN device ${this.name}`, {
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
