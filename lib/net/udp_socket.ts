/**
 * A UDP socket driven through FFI with batched syscalls: one `recvmmsg` reads up
 * to a batch of datagrams and one `sendmmsg` writes a batch, into buffers that
 * are allocated once and reused. Readiness waits run `poll` on a worker thread,
 * so the event loop is never blocked; an eventfd wakes that wait on close.
 */
import { IoVec, libc, LINUX, MMsgHdr, syscallError } from "../../ffi/libc.ts";
import {
  decodeSockaddr,
  encodeSockaddr,
  type Family,
  familyOf,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
  type SocketAddress,
} from "./address.ts";

/** Largest datagram a batch slot holds; longer ones are truncated and dropped. */
export const SLOT_SIZE = 2048;
/** Datagrams per batch. */
export const BATCH = 64;
/** Space for a peer address in a receive slot (a `sockaddr_storage`). */
const NAME_SIZE = 128;
/** Socket buffer size asked for, so bursts survive a busy event loop. */
const SOCKET_BUFFER_BYTES = 8 << 20;

function addressOf(buffer: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/**
 * Datagrams received by one `recvmmsg`: slot `i` holds `lengths[i]` bytes of
 * `packets[i]`, sent from the sockaddr `peers[i]`. Views stay valid only until
 * the batch handler returns; the next batch reuses the same memory.
 */
export interface ReceivedBatch {
  count: number;
  packets: Uint8Array[];
  lengths: Int32Array;
  peers: Uint8Array[];
}

/** Counters kept by a socket. */
export interface UdpSocketStats {
  packetsReceived: number;
  packetsSent: number;
  receiveBatches: number;
  sendBatches: number;
  truncatedDropped: number;
  sendErrors: number;
}

/**
 * Outgoing datagrams waiting for `sendmmsg`. A producer asks for a free slot,
 * writes the payload into `packets[i]` and the destination sockaddr into
 * `peers[i]`, then commits it with its length.
 */
class SendQueue {
  readonly packets: Uint8Array[] = [];
  readonly peers: Uint8Array[] = [];
  readonly headers: Uint8Array;
  readonly headerView: DataView;
  private readonly iovecView: DataView;
  /** Slots in [head, tail) are committed and not yet sent. */
  head = 0;
  tail = 0;

  constructor() {
    const data = new Uint8Array(BATCH * SLOT_SIZE);
    const names = new Uint8Array(BATCH * NAME_SIZE);
    const iovecs = new Uint8Array(BATCH * IoVec.size);
    this.headers = new Uint8Array(BATCH * MMsgHdr.size);
    this.headerView = new DataView(this.headers.buffer);
    this.iovecView = new DataView(iovecs.buffer);
    const dataBase = addressOf(data), namesBase = addressOf(names), iovBase = addressOf(iovecs);
    for (let i = 0; i < BATCH; i++) {
      this.packets.push(data.subarray(i * SLOT_SIZE, (i + 1) * SLOT_SIZE));
      this.peers.push(names.subarray(i * NAME_SIZE, (i + 1) * NAME_SIZE));
      this.iovecView.setBigUint64(
        i * IoVec.size + IoVec.base,
        dataBase + BigInt(i * SLOT_SIZE),
        true,
      );
      const h = i * MMsgHdr.size;
      this.headerView.setBigUint64(h + MMsgHdr.name, namesBase + BigInt(i * NAME_SIZE), true);
      this.headerView.setBigUint64(h + MMsgHdr.iov, iovBase + BigInt(i * IoVec.size), true);
      this.headerView.setBigUint64(h + MMsgHdr.iovLen, 1n, true);
    }
  }

  /** Index of the next free slot, or -1 when every slot holds an unsent datagram. */
  freeSlot(): number {
    if (this.tail === BATCH) {
      if (this.head !== BATCH) return -1;
      this.head = this.tail = 0;
    }
    return this.tail;
  }

  /** Marks the slot from `freeSlot()` as holding `length` bytes for a peer address of `nameLength`. */
  commit(slot: number, length: number, nameLength: number): void {
    this.iovecView.setBigUint64(slot * IoVec.size + IoVec.len, BigInt(length), true);
    this.headerView.setUint32(slot * MMsgHdr.size + MMsgHdr.nameLen, nameLength, true);
    this.tail = slot + 1;
  }
}

/** A bound UDP socket with batched receive and send. */
export class UdpSocket {
  /** The address the socket is bound to (port resolved when 0 was asked). */
  readonly localAddress: SocketAddress;
  /** The bound address as a sockaddr of the socket's family. */
  readonly localSockaddr: Uint8Array;
  /** IPv4-only, or IPv6 (dual-stack when bound to `::`). */
  readonly family: Family;
  /** Counters. */
  readonly stats: UdpSocketStats = {
    packetsReceived: 0,
    packetsSent: 0,
    receiveBatches: 0,
    sendBatches: 0,
    truncatedDropped: 0,
    sendErrors: 0,
  };

  private readonly fd: number;
  private readonly wakeFd: number;
  /** The receive slots; the same object is handed to every batch handler. */
  readonly receiveBatch: ReceivedBatch;
  private readonly receiveHeaders: Uint8Array;
  private readonly receiveHeaderView: DataView;
  private readonly sendQueue = new SendQueue();
  private readonly readPollFds = new Uint8Array(16);
  private readonly writePollFds = new Uint8Array(16);
  /** Receive iovecs; the headers hold raw pointers into this memory, so the socket keeps it. */
  private readonly receiveIovecs: DataView;
  private closing = false;
  private readLoop: Promise<void> | undefined;
  private writeWait: Promise<void> | undefined;
  private onWritable: (() => void) | undefined;

  private constructor(fd: number, wakeFd: number, family: Family, localSockaddr: Uint8Array) {
    this.fd = fd;
    this.wakeFd = wakeFd;
    this.family = family;
    this.localSockaddr = localSockaddr;
    this.localAddress = decodeSockaddr(localSockaddr);
    const data = new Uint8Array(BATCH * SLOT_SIZE);
    const names = new Uint8Array(BATCH * NAME_SIZE);
    const iovecs = new DataView(new ArrayBuffer(BATCH * IoVec.size));
    this.receiveHeaders = new Uint8Array(BATCH * MMsgHdr.size);
    this.receiveHeaderView = new DataView(this.receiveHeaders.buffer);
    this.receiveBatch = { count: 0, packets: [], lengths: new Int32Array(BATCH), peers: [] };
    const dataBase = addressOf(data), namesBase = addressOf(names);
    const iovBase = addressOf(new Uint8Array(iovecs.buffer));
    for (let i = 0; i < BATCH; i++) {
      this.receiveBatch.packets.push(data.subarray(i * SLOT_SIZE, (i + 1) * SLOT_SIZE));
      this.receiveBatch.peers.push(names.subarray(i * NAME_SIZE, (i + 1) * NAME_SIZE));
      iovecs.setBigUint64(i * IoVec.size + IoVec.base, dataBase + BigInt(i * SLOT_SIZE), true);
      iovecs.setBigUint64(i * IoVec.size + IoVec.len, BigInt(SLOT_SIZE), true);
      const h = i * MMsgHdr.size;
      this.receiveHeaderView.setBigUint64(
        h + MMsgHdr.name,
        namesBase + BigInt(i * NAME_SIZE),
        true,
      );
      this.receiveHeaderView.setBigUint64(h + MMsgHdr.iov, iovBase + BigInt(i * IoVec.size), true);
      this.receiveHeaderView.setBigUint64(h + MMsgHdr.iovLen, 1n, true);
    }
    this.receiveIovecs = iovecs;
    for (const [buffer, fdValue] of [[this.readPollFds, fd], [this.writePollFds, fd]] as const) {
      const view = new DataView(buffer.buffer);
      view.setInt32(0, fdValue, true);
      view.setInt32(8, wakeFd, true);
      view.setInt16(12, LINUX.POLLIN, true);
    }
    new DataView(this.readPollFds.buffer).setInt16(4, LINUX.POLLIN, true);
    new DataView(this.writePollFds.buffer).setInt16(4, LINUX.POLLOUT, true);
  }

  /**
   * Binds a UDP socket. `0.0.0.0` or an IPv4 address makes an IPv4 socket; `::`
   * makes a dual-stack socket that also serves IPv4 peers; another IPv6 address
   * makes an IPv6 socket. Port 0 picks a free port.
   */
  static bind(address: SocketAddress): UdpSocket {
    const c = libc();
    const family = familyOf(address);
    const domain = family === 4 ? LINUX.AF_INET : LINUX.AF_INET6;
    const fd = c.socket(domain, LINUX.SOCK_DGRAM | LINUX.SOCK_NONBLOCK | LINUX.SOCK_CLOEXEC, 0);
    if (fd < 0) throw syscallError("socket(UDP)");
    const wakeFd = c.eventfd(0, LINUX.EFD_NONBLOCK | LINUX.EFD_CLOEXEC);
    if (wakeFd < 0) {
      const error = syscallError("eventfd");
      c.close(fd);
      throw error;
    }
    try {
      const int = new Uint8Array(4);
      if (family === 6) {
        // Dual-stack: an IPv6 socket on `::` also accepts IPv4 peers as v4-mapped.
        c.setsockopt(fd, LINUX.IPPROTO_IPV6, LINUX.IPV6_V6ONLY, int, 4);
      }
      new DataView(int.buffer).setInt32(0, SOCKET_BUFFER_BYTES, true);
      for (
        const [force, plain] of [[LINUX.SO_RCVBUFFORCE, LINUX.SO_RCVBUF], [
          LINUX.SO_SNDBUFFORCE,
          LINUX.SO_SNDBUF,
        ]]
      ) {
        // The forced variant needs CAP_NET_ADMIN; the plain one is capped by net.core.*mem_max.
        if (c.setsockopt(fd, LINUX.SOL_SOCKET, force, int, 4) !== 0) {
          c.setsockopt(fd, LINUX.SOL_SOCKET, plain, int, 4);
        }
      }
      const sockaddr = encodeSockaddr(address, family);
      if (c.bind(fd, sockaddr, sockaddr.length) !== 0) {
        throw syscallError(`bind(${address.hostname}:${address.port})`);
      }
      const bound = new Uint8Array(NAME_SIZE);
      const boundLength = new Uint32Array([NAME_SIZE]);
      if (c.getsockname(fd, bound, new Uint8Array(boundLength.buffer)) !== 0) {
        throw syscallError("getsockname");
      }
      const length = family === 4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
      return new UdpSocket(fd, wakeFd, family, bound.slice(0, length));
    } catch (error) {
      c.close(fd);
      c.close(wakeFd);
      throw error;
    }
  }

  /** Encodes a destination for this socket's family (v4-mapped on IPv6 sockets). */
  sockaddrFor(address: SocketAddress): Uint8Array {
    return encodeSockaddr(address, this.family);
  }

  /**
   * Starts the receive loop: `onBatch` is called synchronously for every batch of
   * datagrams until the socket closes. Call once. The promise settles when the
   * loop ends: on close, or with the error of a failed `recvmmsg`.
   */
  receive(onBatch: (batch: ReceivedBatch) => void): Promise<void> {
    if (this.readLoop) throw new Error("UdpSocket.receive() called twice");
    this.readLoop = this.runReadLoop(onBatch);
    return this.readLoop;
  }

  private async runReadLoop(onBatch: (batch: ReceivedBatch) => void): Promise<void> {
    const c = libc();
    const batch = this.receiveBatch;
    const headers = this.receiveHeaderView;
    while (!this.closing) {
      for (let i = 0; i < BATCH; i++) {
        headers.setUint32(i * MMsgHdr.size + MMsgHdr.nameLen, NAME_SIZE, true);
      }
      const count = c.recvmmsg(this.fd, this.receiveHeaders, BATCH, LINUX.MSG_DONTWAIT, null);
      if (count > 0) {
        let kept = 0;
        for (let i = 0; i < count; i++) {
          const h = i * MMsgHdr.size;
          const length = headers.getUint32(h + MMsgHdr.len, true);
          if (headers.getInt32(h + MMsgHdr.flags, true) & LINUX.MSG_TRUNC) {
            this.stats.truncatedDropped++;
            batch.lengths[i] = -1;
            continue;
          }
          batch.lengths[i] = length;
          kept++;
        }
        batch.count = count;
        this.stats.packetsReceived += kept;
        this.stats.receiveBatches++;
        onBatch(batch);
        // A full batch means more may be queued: go round again, yielding to the
        // event loop through a zero-timeout poll so timers and writers still run.
        if (count === BATCH) {
          await c.poll(this.readPollFds, 2n, 0);
          continue;
        }
      } else if (count < 0) {
        const code = new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
        if (code !== LINUX.EAGAIN && code !== LINUX.EINTR) throw syscallError("recvmmsg", code);
      }
      await c.poll(this.readPollFds, 2n, -1);
    }
  }

  /**
   * Index of a free send slot, or -1 while the kernel's send buffer is full and
   * earlier datagrams wait (the caller stops producing; `whenWritable` resumes it).
   */
  sendSlot(): number {
    const slot = this.sendQueue.freeSlot();
    if (slot >= 0) return slot;
    this.flush();
    return this.sendQueue.freeSlot();
  }

  /** The buffer of a send slot, `SLOT_SIZE` bytes. */
  sendBuffer(slot: number): Uint8Array {
    return this.sendQueue.packets[slot];
  }

  /** The destination sockaddr buffer of a send slot (128 bytes). */
  sendPeer(slot: number): Uint8Array {
    return this.sendQueue.peers[slot];
  }

  /** Queues slot `slot` with `length` payload bytes to the sockaddr written in `sendPeer(slot)`. */
  commitSend(slot: number, length: number): void {
    const peer = this.sendQueue.peers[slot];
    const nameLength = peer[0] === LINUX.AF_INET ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
    this.sendQueue.commit(slot, length, nameLength);
    if (this.sendQueue.tail === BATCH) this.flush();
  }

  /** Copies a datagram into the queue for `peer` (a sockaddr); returns false if the queue is full. */
  sendTo(data: Uint8Array, peer: Uint8Array): boolean {
    const slot = this.sendSlot();
    if (slot < 0) return false;
    this.sendQueue.packets[slot].set(data);
    this.sendQueue.peers[slot].set(peer);
    this.commitSend(slot, data.length);
    return true;
  }

  /**
   * Hands every queued datagram to the kernel with `sendmmsg`. When the send
   * buffer is full the rest stays queued and is retried once the socket is
   * writable; the callback registered with `whenWritable` then runs.
   */
  flush(): void {
    const queue = this.sendQueue;
    const c = libc();
    while (queue.head < queue.tail && !this.writeWait) {
      const pending = queue.tail - queue.head;
      const from = queue.headers.subarray(queue.head * MMsgHdr.size);
      const sent = c.sendmmsg(this.fd, from, pending, LINUX.MSG_DONTWAIT);
      if (sent > 0) {
        queue.head += sent;
        this.stats.packetsSent += sent;
        this.stats.sendBatches++;
        continue;
      }
      const code = new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
      if (code === LINUX.EAGAIN) {
        this.waitWritable();
        return;
      }
      if (code === LINUX.EINTR) continue;
      // Unreachable network, message too long, refused by a firewall, ...: this
      // datagram cannot go; drop it (QUIC recovers) and go on with the rest.
      this.stats.sendErrors++;
      queue.head++;
    }
    if (queue.head === queue.tail) queue.head = queue.tail = 0;
  }

  /** Registers the callback that resumes a producer after the send queue drained. */
  whenWritable(callback: () => void): void {
    this.onWritable = callback;
  }

  private waitWritable(): void {
    this.writeWait = libc().poll(this.writePollFds, 2n, -1).then(() => {
      this.writeWait = undefined;
      if (this.closing) return;
      this.flush();
      this.onWritable?.();
    });
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.closing;
  }

  /** Stops the receive loop, waits for in-flight waits to end, and closes the socket. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const one = new Uint8Array(8);
    one[0] = 1;
    const c = libc();
    c.write(this.wakeFd, one, 8n);
    await Promise.allSettled([this.readLoop, this.writeWait]);
    c.close(this.fd);
    c.close(this.wakeFd);
  }
}
