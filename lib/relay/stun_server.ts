/**
 * The relay's STUN responder for NAT-behaviour tests (RFC 8489 Binding, RFC 5780 attributes):
 * it answers on the relay's own QUIC socket (STUN's first byte is 0x00 or 0x01, QUIC's never
 * is) and binds the alternate addresses itself: the primary IP on the alternate port, and the
 * alternate IP on both ports. What to answer is lib/stun's `answerStun`; here are the sockets,
 * the per-source and global rate limits, and the counters. Address discovery for nodes stays
 * QAD on the QUIC connection: this serves behaviour tests only.
 */
import { getLogger } from "@logtape/logtape";
import { decodeSockaddr, formatAddress, type SocketAddress } from "../net/address.ts";
import { UdpSocket } from "../net/udp_socket.ts";
import type { Endpoint } from "../quic/endpoint.ts";
import type { Unsubscribe } from "../events/listeners.ts";
import { STUN_FIRST_BYTES } from "../stun/constants.ts";
import type { StunErrorReason } from "../stun/errors.ts";
import { answerStun } from "../stun/responder.ts";
import {
  checkServerAddresses,
  listeningAddresses,
  StunAddressError,
  type StunServerAddresses,
} from "../stun/server_addresses.ts";
import { SourceLimiter, type SourceLimits } from "../stun/source_limiter.ts";
import { sameSocketAddress } from "../stun/socket_address.ts";

const log = getLogger(["ztna", "relay", "stun"]);

/** Where and how the responder answers. */
export interface StunServerOptions {
  /** The relay's endpoint: its socket is the primary address (IP1:P1). */
  endpoint: Endpoint;
  /** A second IP of this machine: the responder binds it on both ports. */
  alternateIp?: string;
  /** A second port: the responder binds it on both IPs. */
  alternatePort?: number;
  /** Rate limits (defaults: DEFAULT_SOURCE_LIMITS). */
  limits?: Partial<SourceLimits>;
}

/**
 * Counters. Every datagram looked at is counted in `received` and in exactly one of
 * `answered`, `errorsAnswered` or a `dropped...` counter.
 */
export interface StunServerStats {
  received: number;
  bytesReceived: number;
  /** Success responses sent. */
  answered: number;
  /** Error responses (420) sent. */
  errorsAnswered: number;
  bytesSent: number;
  /** Not well-formed STUN; `malformed` splits them by the rule broken. */
  droppedMalformed: number;
  malformed: Partial<Record<StunErrorReason, number>>;
  /** Indications and responses. */
  droppedNotRequest: number;
  /** Requests of another method than Binding. */
  droppedUnknownMethod: number;
  /** Answers larger than three times their request (none should be). */
  droppedOversize: number;
  /** Over the per-source-IP rate. */
  droppedSourceLimited: number;
  /** Over the global rate. */
  droppedGlobalLimited: number;
  /** Answers the socket's send queue had no room for. */
  droppedSendFailed: number;
  /** Datagrams received per listening address ("198.18.1.2:4433": n). */
  receivedOn: Record<string, number>;
}

/** The responder could not start (bad addresses, an address it cannot bind). */
export class StunServerError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StunServerError";
  }
}

/** One listening address and how to send from it. */
interface Listener {
  address: SocketAddress;
  key: string;
  send(bytes: Uint8Array, to: SocketAddress): boolean;
  /** An alternate socket (the primary is the endpoint's). */
  socket?: UdpSocket;
}

/** A running STUN responder. */
export class StunServer {
  /** Counters. */
  readonly stats: StunServerStats = {
    received: 0,
    bytesReceived: 0,
    answered: 0,
    errorsAnswered: 0,
    bytesSent: 0,
    droppedMalformed: 0,
    malformed: {},
    droppedNotRequest: 0,
    droppedUnknownMethod: 0,
    droppedOversize: 0,
    droppedSourceLimited: 0,
    droppedGlobalLimited: 0,
    droppedSendFailed: 0,
    receivedOn: {},
  };
  /** The addresses it answers on and from. */
  readonly addresses: StunServerAddresses;
  readonly #limiter: SourceLimiter;
  readonly #listeners: Listener[];
  readonly #unsubscribe: Unsubscribe;
  readonly #receiving: Promise<void>[] = [];
  readonly #dirty = new Set<UdpSocket>();
  #flushQueued = false;
  #closed = false;

  private constructor(options: StunServerOptions) {
    const { endpoint } = options;
    this.addresses = {
      primary: endpoint.localAddress,
      alternateIp: options.alternateIp,
      alternatePort: options.alternatePort,
    };
    try {
      checkServerAddresses(this.addresses);
      this.#limiter = new SourceLimiter(options.limits);
    } catch (error) {
      if (error instanceof StunAddressError || error instanceof RangeError) {
        throw new StunServerError(`STUN: ${error.message}`);
      }
      throw error;
    }
    const [primary, ...alternates] = listeningAddresses(this.addresses);
    this.#listeners = [{
      address: primary,
      key: formatAddress(primary),
      send: (bytes, to) => endpoint.sendRaw(bytes, to),
    }];
    try {
      for (const address of alternates) this.#listeners.push(this.#bind(address));
      this.#unsubscribe = endpoint.onRawPacket(
        [...STUN_FIRST_BYTES],
        (packet, from) => this.#handle(packet, from, this.#listeners[0]),
      );
    } catch (error) {
      for (const listener of this.#listeners) void listener.socket?.close();
      throw error;
    }
    for (const listener of this.#listeners) this.stats.receivedOn[listener.key] = 0;
  }

  /**
   * Starts answering on `options.endpoint`'s socket and binds the alternates. Throws a
   * StunServerError for an address set that cannot work or an address that cannot be bound.
   */
  static start(options: StunServerOptions): StunServer {
    return new StunServer(options);
  }

  /** Every address it answers on, the primary (the endpoint's) first. */
  get listening(): SocketAddress[] {
    return this.#listeners.map((listener) => listener.address);
  }

  /** Source IPs the rate limiter tracks now (bounded by its `maxSources`). */
  get trackedSources(): number {
    return this.#limiter.size;
  }

  /** Sources the rate limiter forgot to make room. */
  get evictedSources(): number {
    return this.#limiter.evictions;
  }

  #bind(address: SocketAddress): Listener {
    let socket: UdpSocket;
    try {
      socket = UdpSocket.bind(address);
    } catch (error) {
      throw new StunServerError(
        `cannot bind the STUN alternate address ${formatAddress(address)}: ` +
          `${(error as Error).message} (is ${address.hostname} an address of this machine, ` +
          "and the port free?)",
        { cause: error },
      );
    }
    const listener: Listener = {
      address,
      key: formatAddress(address),
      socket,
      send: (bytes, to) => {
        const queued = socket.sendTo(bytes, socket.sockaddrFor(to));
        this.#dirty.add(socket);
        this.#queueFlush();
        return queued;
      },
    };
    this.#receiving.push(socket.receive((batch) => {
      for (let i = 0; i < batch.count; i++) {
        const source = batch.buffer[i];
        const offset = batch.offsets[i];
        const packet = batch.buffers[source].subarray(offset, offset + batch.lengths[i]);
        this.#handle(packet, decodeSockaddr(batch.peers[source]), listener);
      }
    }, (error) => log.warn("STUN socket {address}: {error}", { address: listener.key, error })));
    return listener;
  }

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      for (const socket of this.#dirty) if (!socket.closed) socket.flush();
      this.#dirty.clear();
    });
  }

  #handle(packet: Uint8Array, from: SocketAddress, on: Listener): void {
    if (this.#closed) return;
    const stats = this.stats;
    stats.received++;
    stats.bytesReceived += packet.length;
    stats.receivedOn[on.key]++;
    const reply = answerStun(packet, from, on.address, this.addresses);
    if (reply.kind === "drop") {
      switch (reply.reason) {
        case "malformed":
          stats.droppedMalformed++;
          stats.malformed[reply.malformed!] = (stats.malformed[reply.malformed!] ?? 0) + 1;
          return;
        case "not-request":
          stats.droppedNotRequest++;
          return;
        case "unknown-method":
          stats.droppedUnknownMethod++;
          return;
        case "oversize":
          stats.droppedOversize++;
          return;
      }
    }
    const verdict = this.#limiter.take(from.hostname);
    if (verdict === "source-limited") {
      stats.droppedSourceLimited++;
      return;
    }
    if (verdict === "global-limited") {
      stats.droppedGlobalLimited++;
      return;
    }
    const listener = this.#listeners.find((l) => sameSocketAddress(l.address, reply.origin));
    if (!listener || !listener.send(reply.bytes, from)) {
      stats.droppedSendFailed++;
      return;
    }
    if (reply.stunClass === "success") stats.answered++;
    else stats.errorsAnswered++;
    stats.bytesSent += reply.bytes.length;
  }

  /** Stops answering and closes the alternate sockets (the endpoint stays the relay's). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    await Promise.all(this.#listeners.map((listener) => listener.socket?.close()));
    await Promise.allSettled(this.#receiving);
  }
}
