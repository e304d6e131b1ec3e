/**
 * A UDP socket driven through FFI with batched syscalls and segmentation
 * offloads, as wireguard-go and quic-go use them:
 * - send: datagrams are packed back to back in one arena; consecutive ones to
 *   the same peer with the same size form a run that leaves as one message with
 *   `UDP_SEGMENT` (GSO), and all runs leave in one `sendmmsg`;
 * - receive: one `recvmmsg` fills up to a batch of buffers, each of which may
 *   hold several datagrams coalesced by the kernel (`UDP_GRO`), split here by
 *   their segment size.
 * Memory is allocated once and reused. Readiness waits run `poll` on a worker
 * thread, so the event loop is never blocked; an eventfd wakes them on close.
 */
import { CMsg, IoVec, libc, LINUX, MMsgHdr, syscallError } from "../../ffi/libc.ts";
import {
  decodeSockaddr,
  encodeSockaddr,
  type Family,
  familyOf,
  formatAddress,
  sameSockaddr,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
  type SocketAddress,
} from "./address.ts";

/** Room reserved for one outgoing datagram; larger ones are not produced. */
export const MAX_DATAGRAM = 2048;
/** Receive buffers per `recvmmsg`. */
const RECEIVE_BUFFERS = 32;
/** Size of one receive buffer: a whole GRO super-datagram fits. */
const RECEIVE_BUFFER_SIZE = 65_536;
/** Datagrams one receive batch can describe (a GRO buffer holds at most 64). */
const MAX_RECEIVED = RECEIVE_BUFFERS * 64;
/** Bytes of outgoing datagrams queued before a `sendmmsg`. */
const SEND_ARENA = 512 * 1024;
/** Messages (runs) per `sendmmsg`. */
const SEND_MESSAGES = 64;
/** Most datagrams in one GSO message (the kernel's UDP_MAX_SEGMENTS) and its byte bound. */
const GSO_MAX_SEGMENTS = 64;
const GSO_MAX_BYTES = 65_000;
/** Space for a peer address (a `sockaddr_storage`). */
const NAME_SIZE = 128;
/** Socket buffer size asked for, so bursts survive a busy event loop. */
const SOCKET_BUFFER_BYTES = 8 << 20;

function addressOf(buffer: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

function sockaddrLength(sockaddr: Uint8Array): number {
  return sockaddr[0] === LINUX.AF_INET ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
}

/**
 * Datagrams received by one `recvmmsg`. Datagram `i` is bytes
 * [`offsets[i]`, `offsets[i] + lengths[i]`) of `buffers[buffer[i]]`, sent from
 * the sockaddr `peers[buffer[i]]`. Valid only until the handler returns.
 */
export interface ReceivedBatch {
  count: number;
  buffer: Int32Array;
  offsets: Int32Array;
  lengths: Int32Array;
  buffers: Uint8Array[];
  peers: Uint8Array[];
}

/** Counters kept by a socket. */
export interface UdpSocketStats {
  packetsReceived: number;
  packetsSent: number;
  receiveCalls: number;
  sendCalls: number;
  truncatedDropped: number;
  sendErrors: number;
  /** Failed receive calls and failed batch handlers (the loop carries on). */
  receiveErrors: number;
  /** False once the kernel refused a segmentation offload and it was turned off. */
  gso: boolean;
  gro: boolean;
}

/** Outgoing datagrams packed in an arena, grouped into runs (one message each). */
class SendQueue {
  readonly arena = new Uint8Array(SEND_ARENA);
  readonly headers = new Uint8Array(SEND_MESSAGES * MMsgHdr.size);
  readonly #headerView = new DataView(this.headers.buffer);
  readonly #iovecs = new Uint8Array(SEND_MESSAGES * IoVec.size);
  readonly #iovecView = new DataView(this.#iovecs.buffer);
  readonly #names = new Uint8Array(SEND_MESSAGES * NAME_SIZE);
  readonly #controls = new Uint8Array(SEND_MESSAGES * CMsg.space);
  readonly #controlView = new DataView(this.#controls.buffer);
  readonly #arenaBase = addressOf(this.arena);
  readonly #controlBase = addressOf(this.#controls);
  readonly #runStart = new Int32Array(SEND_MESSAGES);
  readonly #runBytes = new Int32Array(SEND_MESSAGES);
  readonly #runSegment = new Int32Array(SEND_MESSAGES);
  readonly #runCount = new Int32Array(SEND_MESSAGES);
  /** Arena bytes used. */
  tail = 0;
  /** Runs in [head, runs) are queued; runs before head are sent. */
  head = 0;
  runs = 0;
  /** Datagrams queued and not yet sent. */
  datagrams = 0;

  constructor() {
    const namesBase = addressOf(this.#names), iovBase = addressOf(this.#iovecs);
    for (let i = 0; i < SEND_MESSAGES; i++) {
      const h = i * MMsgHdr.size;
      this.#headerView.setBigUint64(h + MMsgHdr.name, namesBase + BigInt(i * NAME_SIZE), true);
      this.#headerView.setBigUint64(h + MMsgHdr.iov, iovBase + BigInt(i * IoVec.size), true);
      this.#headerView.setBigUint64(h + MMsgHdr.iovLen, 1n, true);
      const c = i * CMsg.space;
      this.#controlView.setBigUint64(c + CMsg.len, 18n, true); // CMSG_LEN(sizeof(uint16_t))
      this.#controlView.setInt32(c + CMsg.level, LINUX.SOL_UDP, true);
      this.#controlView.setInt32(c + CMsg.type, LINUX.UDP_SEGMENT, true);
    }
  }

  /** Room for one more datagram at the arena's tail, or null when full. */
  reserve(): Uint8Array | null {
    if (this.tail + MAX_DATAGRAM > SEND_ARENA || this.runs === SEND_MESSAGES) return null;
    return this.arena.subarray(this.tail, this.tail + MAX_DATAGRAM);
  }

  /** Queues the `length` bytes written at the tail for `peer`, joining the last run if it can. */
  commit(length: number, peer: Uint8Array, gso: boolean): void {
    const last = this.runs - 1;
    const names = this.#names;
    if (
      gso && length > 0 && last >= this.head &&
      this.#runCount[last] < GSO_MAX_SEGMENTS &&
      length <= this.#runSegment[last] &&
      // A shorter datagram may only end a run.
      this.#runBytes[last] === this.#runCount[last] * this.#runSegment[last] &&
      this.#runBytes[last] + length <= GSO_MAX_BYTES &&
      sameSockaddr(names.subarray(last * NAME_SIZE), peer)
    ) {
      this.#runBytes[last] += length;
      this.#runCount[last]++;
    } else {
      const run = this.runs++;
      names.set(peer.subarray(0, sockaddrLength(peer)), run * NAME_SIZE);
      this.#runStart[run] = this.tail;
      this.#runBytes[run] = length;
      this.#runSegment[run] = length;
      this.#runCount[run] = 1;
    }
    this.tail += length;
    this.datagrams++;
  }

  /** Fills the message headers of the queued runs; returns how many there are. */
  prepare(): number {
    const headers = this.#headerView;
    for (let run = this.head; run < this.runs; run++) {
      const h = run * MMsgHdr.size;
      const iov = run * IoVec.size;
      this.#iovecView.setBigUint64(
        iov + IoVec.base,
        this.#arenaBase + BigInt(this.#runStart[run]),
        true,
      );
      this.#iovecView.setBigUint64(iov + IoVec.len, BigInt(this.#runBytes[run]), true);
      headers.setUint32(
        h + MMsgHdr.nameLen,
        sockaddrLength(this.#names.subarray(run * NAME_SIZE)),
        true,
      );
      if (this.#runCount[run] > 1) {
        this.#controlView.setUint16(run * CMsg.space + CMsg.data, this.#runSegment[run], true);
        headers.setBigUint64(
          h + MMsgHdr.control,
          this.#controlBase + BigInt(run * CMsg.space),
          true,
        );
        headers.setBigUint64(h + MMsgHdr.controlLen, BigInt(CMsg.space), true);
      } else {
        headers.setBigUint64(h + MMsgHdr.control, 0n, true);
        headers.setBigUint64(h + MMsgHdr.controlLen, 0n, true);
      }
    }
    return this.runs - this.head;
  }

  /** Datagrams in run `run`. */
  runDatagrams(run: number): number {
    return this.#runCount[run];
  }

  /** Marks `count` runs from `head` as sent (or dropped); returns their datagram count. */
  advance(count: number): number {
    let datagrams = 0;
    for (let i = 0; i < count; i++) datagrams += this.#runCount[this.head + i];
    this.head += count;
    this.datagrams -= datagrams;
    if (this.head === this.runs) this.head = this.runs = this.tail = 0;
    return datagrams;
  }
}

/** Receive buffers and their per-message headers, set up once. */
class ReceiveBuffers {
  readonly headers = new Uint8Array(RECEIVE_BUFFERS * MMsgHdr.size);
  readonly headerView = new DataView(this.headers.buffer);
  readonly batch: ReceivedBatch;
  readonly #iovecs = new Uint8Array(RECEIVE_BUFFERS * IoVec.size);
  readonly #controls = new Uint8Array(RECEIVE_BUFFERS * CMsg.space);
  readonly controlView = new DataView(this.#controls.buffer);

  constructor() {
    const data = new Uint8Array(RECEIVE_BUFFERS * RECEIVE_BUFFER_SIZE);
    const names = new Uint8Array(RECEIVE_BUFFERS * NAME_SIZE);
    this.batch = {
      count: 0,
      buffer: new Int32Array(MAX_RECEIVED),
      offsets: new Int32Array(MAX_RECEIVED),
      lengths: new Int32Array(MAX_RECEIVED),
      buffers: [],
      peers: [],
    };
    const iovecs = new DataView(this.#iovecs.buffer);
    const dataBase = addressOf(data), namesBase = addressOf(names);
    const iovBase = addressOf(this.#iovecs), controlBase = addressOf(this.#controls);
    for (let i = 0; i < RECEIVE_BUFFERS; i++) {
      this.batch.buffers.push(
        data.subarray(i * RECEIVE_BUFFER_SIZE, (i + 1) * RECEIVE_BUFFER_SIZE),
      );
      this.batch.peers.push(names.subarray(i * NAME_SIZE, (i + 1) * NAME_SIZE));
      iovecs.setBigUint64(
        i * IoVec.size + IoVec.base,
        dataBase + BigInt(i * RECEIVE_BUFFER_SIZE),
        true,
      );
      iovecs.setBigUint64(i * IoVec.size + IoVec.len, BigInt(RECEIVE_BUFFER_SIZE), true);
      const h = i * MMsgHdr.size;
      this.headerView.setBigUint64(h + MMsgHdr.name, namesBase + BigInt(i * NAME_SIZE), true);
      this.headerView.setBigUint64(h + MMsgHdr.iov, iovBase + BigInt(i * IoVec.size), true);
      this.headerView.setBigUint64(h + MMsgHdr.iovLen, 1n, true);
      this.headerView.setBigUint64(h + MMsgHdr.control, controlBase + BigInt(i * CMsg.space), true);
    }
  }

  /** Resets the in/out fields the kernel overwrites. */
  rearm(): void {
    for (let i = 0; i < RECEIVE_BUFFERS; i++) {
      const h = i * MMsgHdr.size;
      this.headerView.setUint32(h + MMsgHdr.nameLen, NAME_SIZE, true);
      this.headerView.setBigUint64(h + MMsgHdr.controlLen, BigInt(CMsg.space), true);
    }
  }

  /** The GRO segment size the kernel reported for buffer `i`, or 0 if it coalesced nothing. */
  segmentSize(i: number): number {
    const controlLength = this.headerView.getBigUint64(i * MMsgHdr.size + MMsgHdr.controlLen, true);
    if (controlLength < 20n) return 0;
    const c = i * CMsg.space;
    if (
      this.controlView.getInt32(c + CMsg.level, true) !== LINUX.SOL_UDP ||
      this.controlView.getInt32(c + CMsg.type, true) !== LINUX.UDP_GRO
    ) return 0;
    return this.controlView.getInt32(c + CMsg.data, true);
  }
}

/** A bound UDP socket with batched, offloaded receive and send. */
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
    receiveCalls: 0,
    sendCalls: 0,
    truncatedDropped: 0,
    sendErrors: 0,
    receiveErrors: 0,
    gso: true,
    gro: false,
  };

  readonly #fd: number;
  readonly #wakeFd: number;
  readonly #receive = new ReceiveBuffers();
  readonly #send = new SendQueue();
  readonly #readPollFds = new Uint8Array(16);
  readonly #writePollFds = new Uint8Array(16);
  #closing = false;
  #readLoop: Promise<void> | undefined;
  #writeWait: Promise<void> | undefined;
  #onWritable: (() => void) | undefined;

  private constructor(fd: number, wakeFd: number, family: Family, localSockaddr: Uint8Array) {
    this.#fd = fd;
    this.#wakeFd = wakeFd;
    this.family = family;
    this.localSockaddr = localSockaddr;
    this.localAddress = decodeSockaddr(localSockaddr);
    for (
      const [buffer, events] of [[this.#readPollFds, LINUX.POLLIN], [
        this.#writePollFds,
        LINUX.POLLOUT,
      ]] as const
    ) {
      const view = new DataView(buffer.buffer);
      view.setInt32(0, fd, true);
      view.setInt16(4, events, true);
      view.setInt32(8, wakeFd, true);
      view.setInt16(12, LINUX.POLLIN, true);
    }
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
      const intView = new DataView(int.buffer);
      if (family === 6) {
        // Dual-stack: an IPv6 socket on `::` also accepts IPv4 peers as v4-mapped.
        c.setsockopt(fd, LINUX.IPPROTO_IPV6, LINUX.IPV6_V6ONLY, int, 4);
      }
      intView.setInt32(0, SOCKET_BUFFER_BYTES, true);
      for (
        const [force, plain] of [
          [LINUX.SO_RCVBUFFORCE, LINUX.SO_RCVBUF],
          [LINUX.SO_SNDBUFFORCE, LINUX.SO_SNDBUF],
        ]
      ) {
        // The forced variant needs CAP_NET_ADMIN; the plain one is capped by net.core.*mem_max.
        if (c.setsockopt(fd, LINUX.SOL_SOCKET, force, int, 4) !== 0) {
          c.setsockopt(fd, LINUX.SOL_SOCKET, plain, int, 4);
        }
      }
      intView.setInt32(0, 1, true);
      const gro = c.setsockopt(fd, LINUX.SOL_UDP, LINUX.UDP_GRO, int, 4) === 0;
      const sockaddr = encodeSockaddr(address, family);
      if (c.bind(fd, sockaddr, sockaddr.length) !== 0) {
        throw syscallError(`bind(${formatAddress(address)})`);
      }
      const bound = new Uint8Array(NAME_SIZE);
      const boundLength = new Uint32Array([NAME_SIZE]);
      if (c.getsockname(fd, bound, new Uint8Array(boundLength.buffer)) !== 0) {
        throw syscallError("getsockname");
      }
      const length = family === 4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
      const socket = new UdpSocket(fd, wakeFd, family, bound.slice(0, length));
      socket.stats.gro = gro;
      return socket;
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

  /** The receive buffers; the same object is handed to every batch handler. */
  get receiveBatch(): ReceivedBatch {
    return this.#receive.batch;
  }

  /**
   * Starts the receive loop: `onBatch` is called synchronously for every batch of
   * datagrams until the socket closes. Call once. A failing `recvmmsg` or a
   * throwing `onBatch` is counted and reported to `onError`, and the loop goes
   * on: a socket never goes deaf. The promise resolves when the socket closes.
   */
  receive(
    onBatch: (batch: ReceivedBatch) => void,
    onError: (error: Error) => void = () => {},
  ): Promise<void> {
    if (this.#readLoop) throw new Error("UdpSocket.receive() called twice");
    this.#readLoop = this.#runReadLoop(onBatch, onError);
    return this.#readLoop;
  }

  async #runReadLoop(
    onBatch: (batch: ReceivedBatch) => void,
    onError: (error: Error) => void,
  ): Promise<void> {
    const c = libc();
    const receive = this.#receive;
    const batch = receive.batch;
    const headers = receive.headerView;
    while (!this.#closing) {
      receive.rearm();
      const count = c.recvmmsg(
        this.#fd,
        receive.headers,
        RECEIVE_BUFFERS,
        LINUX.MSG_DONTWAIT,
        null,
      );
      if (count > 0) {
        let n = 0;
        for (let i = 0; i < count; i++) {
          const h = i * MMsgHdr.size;
          const length = headers.getUint32(h + MMsgHdr.len, true);
          if (headers.getInt32(h + MMsgHdr.flags, true) & LINUX.MSG_TRUNC) {
            this.stats.truncatedDropped++;
            continue;
          }
          const segment = receive.segmentSize(i) || length;
          let offset = 0;
          do { // An empty datagram is one datagram too.
            batch.buffer[n] = i;
            batch.offsets[n] = offset;
            batch.lengths[n] = Math.min(segment, length - offset);
            n++;
            offset += segment;
          } while (offset < length);
        }
        batch.count = n;
        this.stats.packetsReceived += n;
        this.stats.receiveCalls++;
        try {
          onBatch(batch);
        } catch (error) {
          this.stats.receiveErrors++;
          onError(error as Error);
        }
        // A full batch means more may be queued: go round again, yielding to the
        // event loop through a zero-timeout poll so timers and writers still run.
        if (count === RECEIVE_BUFFERS) {
          await c.poll(this.#readPollFds, 2n, 0);
          continue;
        }
      } else if (count < 0) {
        const code = new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
        if (code !== LINUX.EAGAIN && code !== LINUX.EINTR) {
          this.stats.receiveErrors++;
          onError(syscallError("recvmmsg", code));
        }
      }
      await c.poll(this.#readPollFds, 2n, -1);
    }
  }

  /**
   * Room for one outgoing datagram (`MAX_DATAGRAM` bytes), or null while the
   * kernel's send buffer is full and earlier datagrams wait: the caller stops
   * producing, and `whenWritable`'s callback resumes it.
   */
  reserve(): Uint8Array | null {
    const room = this.#send.reserve();
    if (room) return room;
    this.flush();
    return this.#send.reserve();
  }

  /** Queues the `length` bytes written into the last `reserve()`d room, to the sockaddr `peer`. */
  commit(length: number, peer: Uint8Array): void {
    this.#send.commit(length, peer, this.stats.gso);
  }

  /**
   * Copies a datagram into the queue for `peer` (a sockaddr); returns false if
   * the queue is full. A datagram over `MAX_DATAGRAM` bytes is a RangeError.
   */
  sendTo(data: Uint8Array, peer: Uint8Array): boolean {
    if (data.length > MAX_DATAGRAM) {
      throw new RangeError(`datagram of ${data.length} bytes exceeds ${MAX_DATAGRAM}`);
    }
    const room = this.reserve();
    if (!room) return false;
    room.set(data);
    this.commit(data.length, peer);
    return true;
  }

  /** Datagrams queued and not yet handed to the kernel. */
  get queued(): number {
    return this.#send.datagrams;
  }

  /**
   * Hands every queued datagram to the kernel with `sendmmsg`. When the send
   * buffer is full the rest stays queued and is retried once the socket is
   * writable; the callback registered with `whenWritable` then runs.
   */
  flush(): void {
    const queue = this.#send;
    const c = libc();
    while (queue.head < queue.runs && !this.#writeWait) {
      const pending = queue.prepare();
      const from = queue.headers.subarray(queue.head * MMsgHdr.size);
      const sent = c.sendmmsg(this.#fd, from, pending, LINUX.MSG_DONTWAIT);
      if (sent > 0) {
        this.stats.packetsSent += queue.advance(sent);
        this.stats.sendCalls++;
        continue;
      }
      const code = new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
      if (code === LINUX.EAGAIN) {
        this.#waitWritable();
        return;
      }
      if (code === LINUX.EINTR) continue;
      if (code === LINUX.EIO && queue.runDatagrams(queue.head) > 1) {
        // The device refused segmentation offload: turn it off; QUIC resends what is lost.
        this.stats.gso = false;
      }
      // Unreachable network, message too long, refused by a firewall, ...: this
      // message cannot go; drop it and go on with the rest.
      this.stats.sendErrors += queue.advance(1);
    }
  }

  /** Registers the callback that resumes a producer after the send queue drained. */
  whenWritable(callback: () => void): void {
    this.#onWritable = callback;
  }

  #waitWritable(): void {
    this.#writeWait = libc().poll(this.#writePollFds, 2n, -1).then(() => {
      this.#writeWait = undefined;
      if (this.#closing) return;
      this.flush();
      this.#onWritable?.();
    });
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#closing;
  }

  /** Stops the receive loop, waits for in-flight waits to end, and closes the socket. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    const one = new Uint8Array(8);
    one[0] = 1;
    const c = libc();
    c.write(this.#wakeFd, one, 8n);
    await Promise.allSettled([this.#readLoop, this.#writeWait]);
    c.close(this.#fd);
    c.close(this.#wakeFd);
  }
}
