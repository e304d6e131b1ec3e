/**
 * A QUIC endpoint: one UDP socket hosting client and server connections at
 * once. Incoming packets are routed by destination connection ID; unknown
 * Initials are answered with version negotiation or a stateless retry, or
 * accepted within bounds on handshakes in progress (in all, per source, one
 * per virtual peer, each for a few seconds at most); every connection's timer
 * is driven by one earliest-deadline scheduler; outgoing packets leave in
 * `sendmmsg` batches.
 */
import { getLogger } from "@logtape/logtape";
import { quiche } from "../../ffi/quiche.ts";
import {
  MIN_CLIENT_INITIAL_LEN,
  PacketType,
  QUICHE_ERR_DONE,
  RecvInfo,
  SendInfo,
} from "../../ffi/quiche_constants.ts";
import {
  decodeSockaddr,
  formatAddress,
  isVirtualSockaddr,
  type SocketAddress,
} from "../net/address.ts";
import { MAX_DATAGRAM, type ReceivedBatch, UdpSocket } from "../net/udp_socket.ts";
import type { QuicConfig } from "./config.ts";
import { Connection, type ConnectionHost } from "./connection.ts";
import { cidKey, destinationCidKey, LOCAL_CID_LENGTH, newConnectionId } from "./connection_id.ts";
import { DeadlineScheduler } from "./deadline_scheduler.ts";
import { describeClose } from "./errors.ts";
import { HandshakeLimits, type HandshakeRefusal, sourceKey } from "./handshake_limits.ts";
import { RetryTokens } from "./retry_token.ts";
import { ThrottledReport } from "./throttled_report.ts";
import type { Unsubscribe } from "../events/listeners.ts";

const MAX_DATAGRAM_N = BigInt(MAX_DATAGRAM);
/** CRYPTO_ERROR carrying TLS alert 116, certificate_required (RFC 8446 §6.2, RFC 9001 §4.8). */
const TLS_ALERT_CERTIFICATE_REQUIRED = 0x100 + 116;
/** Transport error CONNECTION_REFUSED (RFC 9000 §20.1), sent to a handshake that timed out. */
const CONNECTION_REFUSED = 0x2;
const log = getLogger(["ztna", "quic"]);

/** Default of `ServerOptions.maxHandshakes`. */
export const DEFAULT_MAX_HANDSHAKES = 1_000;
/** Default of `ServerOptions.maxHandshakesPerAddress`. */
export const DEFAULT_MAX_HANDSHAKES_PER_ADDRESS = 32;
/** Default of `ServerOptions.handshakeTimeoutMs`. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000;
/** Refused handshakes are logged at warn at most this often (with the count since the last line). */
export const REFUSED_HANDSHAKES_LOG_MS = 60_000;

/** Server side of an endpoint. */
export interface ServerOptions {
  /** Configuration for accepted connections (certificate, ALPN, client verification). */
  config: QuicConfig;
  /** Validate client addresses with a stateless retry before accepting (default true). */
  retry?: boolean;
  /**
   * Most server handshakes in progress at once (default 1,000): an Initial that
   * would start one more is dropped (no state) and counted in `handshakesRefused`.
   */
  maxHandshakes?: number;
  /**
   * Most server handshakes in progress from one source IP, any port (an IPv6
   * /64 counts as one source; default 32); past it, as for `maxHandshakes`.
   */
  maxHandshakesPerAddress?: number;
  /**
   * A server handshake not complete this many ms after its first Initial is
   * dropped: its state is freed at once, without a draining period, and it is
   * counted in `handshakesTimedOut` (default 5,000).
   */
  handshakeTimeoutMs?: number;
  /**
   * Accept connections from virtual peers only (default false): long-header
   * packets for no known connection from any real address are dropped unanswered
   * (no version negotiation, no retry) and counted in `nonVirtualDropped`. For a
   * node whose sessions always start on the relay path and only migrate to direct
   * addresses, so Initials at its public socket cost nothing.
   */
  acceptVirtualOnly?: boolean;
  /** Called for each accepted connection once its handshake completed. */
  onConnection: (connection: Connection) => void;
}

/** Options of `Endpoint.bind`. */
export interface EndpointOptions {
  /** Address to bind; `::` is dual-stack, port 0 picks a free port. */
  address: SocketAddress;
  /** Accept incoming connections. */
  server?: ServerOptions;
}

/** Options of `Endpoint.connect`. */
export interface ConnectOptions {
  /** The server's address. */
  peer: SocketAddress;
  /** Name the server's certificate must carry (also sent as SNI). */
  serverName: string;
  /** Client configuration (CA, ALPN, client certificate for mutual TLS). */
  config: QuicConfig;
}

/**
 * Endpoint counters. Every received packet (from the socket or a virtual peer)
 * is counted exactly once: routed to a connection, or in one of the drop/answer
 * counters listed before `rejectedByQuic`. The counters from `rejectedByQuic` on
 * count connections, or a subset of the routed packets.
 */
export interface EndpointStats {
  /** Packets handed to a connection (which may still discard them, e.g. if they fail to decrypt). */
  routedToConnections: number;
  /** Packets for no known connection that could not start one, dropped. */
  unknownConnectionDropped: number;
  /** Packets too short or with a malformed header, dropped. */
  malformedDropped: number;
  /** Non-QUIC datagrams (first byte below 0x40) handed to their registered handler. */
  rawDelivered: number;
  /** Non-QUIC datagrams no handler claims, dropped. */
  rawUnclaimed: number;
  /** Initials of a QUIC version we do not speak, answered with version negotiation. */
  versionNegotiations: number;
  /** Token-less Initials, answered with a retry. */
  retries: number;
  /**
   * Initials whose retry token was forged, stale, for another address or for
   * another destination connection ID than its Retry named, dropped.
   */
  invalidTokens: number;
  /**
   * Initials that would start a handshake past `maxHandshakes` or
   * `maxHandshakesPerAddress`, dropped. Datagrams, not clients: a ClientHello in
   * two Initials counts twice, and each retransmission again.
   */
  handshakesRefused: number;
  /** Long-header packets for no known connection from a real address under `acceptVirtualOnly`, dropped. */
  nonVirtualDropped: number;
  /**
   * Initials that would start a second server connection at a virtual peer whose
   * first is not yet finished, dropped.
   */
  duplicateVirtualDropped: number;
  /** Initials quiche would not accept, dropped. */
  acceptFailures: number;
  /** Packets quiche refused with an error (protocol violation, ...); a subset of routed ones. */
  rejectedByQuic: number;
  /** Server connections whose handshake completed and that were handed to `onConnection`. */
  connectionsAccepted: number;
  /** Handshakes refused because the client sent no certificate. */
  clientCertificateMissing: number;
  /** Server handshakes not complete within `handshakeTimeoutMs`, freed. */
  handshakesTimedOut: number;
}

/**
 * `quiche_recv_info` per receive buffer, pointing at the buffer's peer address
 * and the local address; allocated once.
 */
function makeRecvInfos(socket: UdpSocket): Uint8Array[] {
  const peers = socket.receiveBatch.peers;
  const memory = new Uint8Array(peers.length * RecvInfo.size);
  const view = new DataView(memory.buffer);
  const local = socket.localSockaddr;
  const localAddress = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(local)));
  return peers.map((peer, i) => {
    const base = i * RecvInfo.size;
    const peerAddress = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(peer)));
    view.setBigUint64(base + RecvInfo.from, peerAddress, true);
    view.setUint32(base + RecvInfo.fromLen, local.length, true);
    view.setBigUint64(base + RecvInfo.to, localAddress, true);
    view.setUint32(base + RecvInfo.toLen, local.length, true);
    return memory.subarray(base, base + RecvInfo.size);
  });
}

/**
 * A peer reached through another transport instead of the socket (a session's
 * relay path): quiche sees it at a virtual address (see `virtualAddress`).
 */
export interface VirtualPeer {
  /** Its virtual address, to `connect` to or to recognise in path events. */
  readonly address: SocketAddress;
  /** Feeds a packet that arrived from this peer through its transport. */
  receive(packet: Uint8Array): void;
  /** Stops routing packets to and from this peer. */
  detach(): void;
}

/**
 * Handles a non-QUIC datagram that arrived on the endpoint's socket; the bytes
 * are valid only during the call.
 */
export type RawPacketHandler = (packet: Uint8Array, from: SocketAddress) => void;

/**
 * True for a datagram that cannot be QUIC: every QUIC packet we accept has the
 * fixed bit (0x40) set, and a version negotiation has the long-header bit (0x80).
 * STUN (0x00, 0x01) and punch packets live below 0x40.
 */
export function isRawPacket(firstByte: number): boolean {
  return firstByte < 0x40;
}

/** Header fields of a packet for an unknown connection. */
class HeaderScratch {
  readonly version = new Uint32Array(1);
  readonly type = new Uint8Array(1);
  readonly scid = new Uint8Array(20);
  readonly scidLength = new BigUint64Array(1);
  readonly dcid = new Uint8Array(20);
  readonly dcidLength = new BigUint64Array(1);
  readonly token = new Uint8Array(256);
  readonly tokenLength = new BigUint64Array(1);
  readonly out = new Uint8Array(MAX_DATAGRAM);
}

/** A QUIC endpoint on one UDP socket. */
export class Endpoint implements ConnectionHost {
  /** Counters. */
  readonly stats: EndpointStats = {
    routedToConnections: 0,
    unknownConnectionDropped: 0,
    malformedDropped: 0,
    rawDelivered: 0,
    rawUnclaimed: 0,
    versionNegotiations: 0,
    retries: 0,
    invalidTokens: 0,
    handshakesRefused: 0,
    nonVirtualDropped: 0,
    duplicateVirtualDropped: 0,
    acceptFailures: 0,
    rejectedByQuic: 0,
    connectionsAccepted: 0,
    clientCertificateMissing: 0,
    handshakesTimedOut: 0,
  };
  /** Secret for stateless reset tokens. */
  readonly resetSecret = crypto.getRandomValues(new Uint8Array(32));

  readonly #socket: UdpSocket;
  readonly #recvInfos: Uint8Array[];
  readonly #sendInfo = new Uint8Array(SendInfo.size);
  #server: ServerOptions | undefined;
  readonly #retryTokens = new RetryTokens();
  /** Server handshakes in progress, by connection and by source; bounded by `maxHandshakes`. */
  readonly #handshakes: HandshakeLimits<Connection>;
  readonly #handshakeTimeoutMs: number;
  /** Deadlines of server handshakes in progress: one timer for all of them. */
  readonly #handshakeDeadlines = new DeadlineScheduler<Connection>((due) =>
    this.#onHandshakeTimeouts(due)
  );
  /** Warnings about refused handshakes, at most one a minute. */
  readonly #refusedReport: ThrottledReport<{ peer: Uint8Array; refusal: HandshakeRefusal }>;
  /** The live (not yet finished) server connection of each virtual peer, by sockaddr key. */
  readonly #virtualServerConnections = new Map<string, Connection>();
  readonly #routes = new Map<string, Connection>();
  readonly #connections = new Set<Connection>();
  readonly #scheduler = new DeadlineScheduler<Connection>((due) => this.#onTimers(due));
  /** Connections that need a send pass; flushed in a microtask. */
  readonly #awake = new Set<Connection>();
  #flushQueued = false;
  /** Connections whose send pass stopped on a full socket queue. */
  readonly #blocked = new Set<Connection>();
  readonly #header = new HeaderScratch();
  /** Transports of virtual peers, by sockaddr key. */
  readonly #virtualPeers = new Map<string, (packet: Uint8Array) => void>();
  /** Handlers of non-QUIC datagrams, by first byte. */
  readonly #rawHandlers = new Map<number, RawPacketHandler>();
  readonly #receiving: Promise<void>;
  #closed = false;

  private constructor(
    socket: UdpSocket,
    server: ServerOptions | undefined,
    handshakes: HandshakeLimits<Connection>,
    handshakeTimeoutMs: number,
  ) {
    this.#socket = socket;
    this.#server = server;
    this.#handshakes = handshakes;
    this.#handshakeTimeoutMs = handshakeTimeoutMs;
    this.#refusedReport = new ThrottledReport(
      REFUSED_HANDSHAKES_LOG_MS,
      (count, latest) => this.#warnRefused(count, latest.peer, latest.refusal),
    );
    this.#recvInfos = makeRecvInfos(socket);
    socket.whenWritable(() => {
      const blocked = [...this.#blocked];
      this.#blocked.clear();
      for (const connection of blocked) this.wake(connection);
    });
    this.#receiving = socket.receive(
      (batch) => this.#onBatch(batch),
      (error) =>
        log.error("receiving on {address}: {error}", {
          address: formatAddress(socket.localAddress),
          error,
        }),
    );
  }

  /**
   * Binds an endpoint's socket; with `server`, it also accepts connections.
   * Throws a RangeError for server limits that are not positive integers.
   */
  static bind(options: EndpointOptions): Endpoint {
    quiche();
    const server = options.server;
    // Checked before the socket exists, so a bad option leaks nothing.
    const handshakes = new HandshakeLimits<Connection>(
      server?.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES,
      server?.maxHandshakesPerAddress ?? DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
    );
    const timeout = server?.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (!(Number.isFinite(timeout) && timeout > 0)) {
      throw new RangeError(`handshakeTimeoutMs must be a positive number, got ${timeout}`);
    }
    return new Endpoint(UdpSocket.bind(options.address), server, handshakes, timeout);
  }

  /**
   * Server: accepts new connections with `config` from now on (a certificate
   * reload); live connections keep theirs. The caller frees the old config.
   */
  replaceServerConfig(config: QuicConfig): void {
    if (!this.#server) throw new Error("replaceServerConfig: this endpoint is not a server");
    this.#server = { ...this.#server, config };
  }

  /** The bound local address. */
  get localAddress(): SocketAddress {
    return this.#socket.localAddress;
  }

  /** 4: an IPv4 socket; 6: an IPv6 socket (dual-stack when bound to `::`). */
  get family(): 4 | 6 {
    return this.#socket.family;
  }

  /** The local sockaddr given to quiche for every path. */
  get localSockaddr(): Uint8Array {
    return this.#socket.localSockaddr;
  }

  /** The socket's counters. */
  get socketStats(): UdpSocket["stats"] {
    return this.#socket.stats;
  }

  /** Number of live connections. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Number of server handshakes in progress (at most `maxHandshakes`). */
  get handshakesInProgress(): number {
    return this.#handshakes.size;
  }

  /** Number of sources with a server handshake in progress (the per-source table's size). */
  get handshakeSources(): number {
    return this.#handshakes.sources;
  }

  /** Encodes an address for this endpoint's socket. */
  sockaddrFor(address: SocketAddress): Uint8Array {
    return this.#socket.sockaddrFor(address);
  }

  /** Starts a client connection; await its `established` for the handshake. */
  connect(options: ConnectOptions): Connection {
    if (this.#closed) throw new Error("endpoint is closed");
    const scid = newConnectionId();
    const peer = this.sockaddrFor(options.peer);
    const local = this.localSockaddr;
    const pointer = quiche().quiche_connect(
      new TextEncoder().encode(`${options.serverName}\0`),
      scid,
      BigInt(scid.length),
      local,
      local.length,
      peer,
      peer.length,
      options.config.pointer,
    );
    if (pointer === null) {
      throw new Error(`cannot start a QUIC connection to ${formatAddress(options.peer)}`);
    }
    const connection = new Connection(pointer, this, scid, false, options.peer);
    this.#connections.add(connection);
    this.wake(connection);
    return connection;
  }

  /** For Connection: routes `cid` to `connection`. */
  addConnectionId(connection: Connection, cid: Uint8Array): void {
    this.#routes.set(cidKey(cid), connection);
  }

  /** For Connection: stops routing `cid`. */
  removeConnectionId(cid: Uint8Array): void {
    this.#routes.delete(cidKey(cid));
  }

  /** For Connection: schedules a send pass for `connection` in a microtask. */
  wake(connection: Connection): void {
    this.#awake.add(connection);
    this.#queueFlush();
  }

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => this.#flushAwake());
  }

  #flushAwake(): void {
    this.#flushQueued = false;
    if (this.#closed) return;
    this.#serviceAwake();
    this.#socket.flush();
  }

  /** Send passes for woken connections, so their packets join the current flush. */
  #serviceAwake(): void {
    while (this.#awake.size > 0) {
      const awake = [...this.#awake];
      this.#awake.clear();
      for (const connection of awake) this.#service(connection, false);
    }
  }

  /**
   * Hands the non-QUIC datagrams whose first byte is one of `firstBytes` (each
   * below 0x40) to `handler`: STUN, punch packets. One handler per byte.
   */
  onRawPacket(firstBytes: number[], handler: RawPacketHandler): Unsubscribe {
    for (const byte of firstBytes) {
      if (!isRawPacket(byte)) throw new RangeError(`first byte 0x${byte.toString(16)} is QUIC's`);
      if (this.#rawHandlers.has(byte)) {
        throw new Error(`non-QUIC first byte 0x${byte.toString(16)} already has a handler`);
      }
    }
    for (const byte of firstBytes) this.#rawHandlers.set(byte, handler);
    return () => {
      for (const byte of firstBytes) {
        if (this.#rawHandlers.get(byte) === handler) this.#rawHandlers.delete(byte);
      }
    };
  }

  /**
   * Sends a non-QUIC datagram (STUN, a punch) from the endpoint's socket; it
   * leaves with the next flush. Returns false if the send queue is full.
   */
  sendRaw(data: Uint8Array, to: SocketAddress): boolean {
    if (this.#closed || data.length === 0 || !isRawPacket(data[0])) {
      throw new Error("sendRaw takes a non-empty, non-QUIC datagram on an open endpoint");
    }
    const queued = this.#socket.sendTo(data, this.sockaddrFor(to));
    this.#queueFlush();
    return queued;
  }

  #deliverRaw(packet: Uint8Array, peer: Uint8Array): void {
    const handler = this.#rawHandlers.get(packet[0]);
    if (!handler) {
      this.stats.rawUnclaimed++;
      return;
    }
    this.stats.rawDelivered++;
    try {
      handler(packet, decodeSockaddr(peer));
    } catch (error) {
      log.error("non-QUIC packet handler failed: {error}", { error });
    }
  }

  #onBatch(batch: ReceivedBatch): void {
    const touched: Connection[] = [];
    for (let i = 0; i < batch.count; i++) {
      const length = batch.lengths[i];
      const source = batch.buffer[i];
      const offset = batch.offsets[i];
      const packet = batch.buffers[source].subarray(offset, offset + length);
      if (length > 0 && isRawPacket(packet[0])) {
        this.#deliverRaw(packet, batch.peers[source]);
        continue;
      }
      const key = destinationCidKey(packet, length);
      if (key === null) {
        this.stats.malformedDropped++;
        continue;
      }
      const connection = this.#route(key, packet, batch.peers[source], this.#recvInfos[source]);
      if (connection && !touched.includes(connection)) touched.push(connection);
    }
    for (const connection of touched) this.#service(connection, true);
    // Connections woken while handling input (a relay forwarding to another node, a
    // stream handler replying) send in this same flush, not in a later syscall.
    this.#serviceAwake();
    this.#socket.flush();
  }

  /** Hands one packet to its connection (accepting a new one if it is an Initial). */
  #route(
    key: string,
    packet: Uint8Array,
    peer: Uint8Array,
    recvInfo: Uint8Array,
  ): Connection | undefined {
    let connection = this.#routes.get(key);
    if (!connection) {
      if (!this.#server) {
        this.stats.unknownConnectionDropped++;
        return undefined;
      }
      connection = this.#accept(packet, packet.length, peer);
      if (!connection) return undefined;
    }
    this.stats.routedToConnections++;
    const code = quiche().quiche_conn_recv(
      connection.pointer,
      packet,
      BigInt(packet.length),
      recvInfo,
    );
    if (code < 0 && code !== QUICHE_ERR_DONE) this.stats.rejectedByQuic++;
    return connection;
  }

  /**
   * Routes packets for `address` (a `virtualAddress`) through `send` instead
   * of the socket; packets from it are fed with the returned peer's `receive`.
   */
  attachVirtualPeer(address: SocketAddress, send: (packet: Uint8Array) => void): VirtualPeer {
    const sockaddr = this.sockaddrFor(address);
    if (!isVirtualSockaddr(sockaddr)) {
      throw new Error(`${formatAddress(address)} is not a virtual address (0.0.0.0/8)`);
    }
    const key = cidKey(sockaddr);
    if (this.#virtualPeers.has(key)) {
      throw new Error(`virtual peer ${formatAddress(address)} is already attached`);
    }
    this.#virtualPeers.set(key, send);
    const local = this.localSockaddr;
    const recvInfo = new Uint8Array(RecvInfo.size);
    const view = new DataView(recvInfo.buffer);
    view.setBigUint64(
      RecvInfo.from,
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(sockaddr))),
      true,
    );
    view.setUint32(RecvInfo.fromLen, sockaddr.length, true);
    view.setBigUint64(
      RecvInfo.to,
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(local))),
      true,
    );
    view.setUint32(RecvInfo.toLen, local.length, true);
    return {
      address,
      receive: (packet) => {
        if (this.#closed || !this.#virtualPeers.has(key)) return;
        const dcid = destinationCidKey(packet, packet.length);
        if (dcid === null) {
          this.stats.malformedDropped++;
          return;
        }
        // Keep `sockaddr` and `recvInfo` reachable: recvInfo holds raw pointers to them.
        const connection = this.#route(dcid, packet, sockaddr, recvInfo);
        if (!connection) return;
        this.#service(connection, true);
        // Its packets leave with the flush of the batch this arrived in (or a microtask's),
        // not one syscall per relayed packet.
        this.wake(connection);
      },
      detach: () => {
        this.#virtualPeers.delete(key);
      },
    };
  }

  #onTimers(due: Connection[]): void {
    const q = quiche();
    for (const connection of due) {
      if (connection.isClosed) continue;
      q.quiche_conn_on_timeout(connection.pointer);
      this.#service(connection, true);
    }
    this.#serviceAwake();
    this.#socket.flush();
  }

  /** Delivers a connection's events (after input), sends what it has, re-arms its timer or frees it. */
  #service(connection: Connection, afterInput: boolean): void {
    if (connection.isClosed) return;
    if (afterInput) {
      try {
        connection.processEvents((c) => this.#onEstablished(c));
      } catch (error) {
        log.error("connection event handler failed: {error}", { error });
      }
      if (connection.isClosed) return;
    }
    this.#produce(connection);
    if (connection.isClosedNative()) {
      this.#finish(connection);
    } else {
      this.#scheduler.set(connection, connection.deadline());
    }
  }

  #onEstablished(connection: Connection): void {
    log.debug("connection with {peer} established ({alpn})", {
      peer: formatAddress(connection.initialPeer),
      alpn: connection.alpn,
    });
    if (!connection.isServer) return;
    this.#handshakes.delete(connection);
    this.#handshakeDeadlines.delete(connection);
    const server = this.#server!;
    if ((server.config.options.verifyPeer ?? true) && connection.peerCertificate === null) {
      // BoringSSL asks for a client certificate but lets a client without one through.
      this.stats.clientCertificateMissing++;
      connection.closeWithTransportError(
        TLS_ALERT_CERTIFICATE_REQUIRED,
        "client certificate required",
      );
      return;
    }
    this.stats.connectionsAccepted++;
    server.onConnection(connection);
  }

  /**
   * Moves every packet quiche has for `connection` into the socket's send
   * queue. quiche's `send` serves a path that needs probing first and answers
   * Done when that path's congestion window is full, even if the active path
   * could send; so a connection with several paths is also drained on its
   * active path, or a stalled probe would starve the session's traffic.
   */
  #produce(connection: Connection): void {
    const q = quiche();
    const pointer = connection.pointer;
    const info = this.#sendInfo;
    if (
      !this.#drain(connection, (room) => q.quiche_conn_send(pointer, room, MAX_DATAGRAM_N, info))
    ) {
      return;
    }
    const active = connection.activePeerSockaddr();
    if (active === null) return;
    const local = this.localSockaddr;
    this.#drain(connection, (room) =>
      q.quiche_conn_send_on_path(
        pointer,
        room,
        MAX_DATAGRAM_N,
        local,
        local.length,
        active,
        active.length,
        info,
      ));
  }

  /**
   * Writes packets with `send` (a quiche send call into `room`) until it is
   * Done; returns false if it stopped for another reason (a full socket queue
   * or an error), true when quiche had nothing more.
   */
  #drain(connection: Connection, send: (room: Uint8Array) => number): boolean {
    const socket = this.#socket;
    const to = this.#sendInfo.subarray(SendInfo.to, SendInfo.toLen);
    for (;;) {
      const room = socket.reserve();
      if (room === null) {
        this.#blocked.add(connection);
        return false;
      }
      const written = send(room);
      if (written === QUICHE_ERR_DONE) return true;
      if (written < 0) {
        log.warn("quiche send failed ({code}) for {peer}", {
          code: written,
          peer: formatAddress(connection.initialPeer),
        });
        return false;
      }
      if (isVirtualSockaddr(to)) {
        // Through the peer's transport; the room is reused by the next packet.
        this.#virtualPeers.get(cidKey(to, 0, this.localSockaddr.length))?.(
          room.subarray(0, written),
        );
      } else {
        socket.commit(written, to);
      }
    }
  }

  #finish(connection: Connection): void {
    this.#scheduler.delete(connection);
    this.#connections.delete(connection);
    this.#awake.delete(connection);
    this.#blocked.delete(connection);
    if (connection.isServer) {
      this.#handshakes.delete(connection);
      this.#handshakeDeadlines.delete(connection);
      const peer = this.sockaddrFor(connection.initialPeer);
      if (isVirtualSockaddr(peer)) {
        const key = cidKey(peer);
        if (this.#virtualServerConnections.get(key) === connection) {
          this.#virtualServerConnections.delete(key);
        }
      }
    }
    const reason = connection.finish();
    log.debug("connection with {peer} closed: {reason}", {
      peer: formatAddress(connection.initialPeer),
      reason: describeClose(reason),
    });
  }

  /** Handles a packet for no known connection: version negotiation, retry, or accept. */
  #accept(packet: Uint8Array, length: number, peer: Uint8Array): Connection | undefined {
    const q = quiche();
    const h = this.#header;
    h.scidLength[0] = BigInt(h.scid.length);
    h.dcidLength[0] = BigInt(h.dcid.length);
    h.tokenLength[0] = BigInt(h.token.length);
    const code = q.quiche_header_info(
      packet,
      BigInt(length),
      BigInt(LOCAL_CID_LENGTH),
      new Uint8Array(h.version.buffer),
      h.type,
      h.scid,
      new Uint8Array(h.scidLength.buffer),
      h.dcid,
      new Uint8Array(h.dcidLength.buffer),
      h.token,
      new Uint8Array(h.tokenLength.buffer),
    );
    if (code < 0) {
      this.stats.malformedDropped++;
      return undefined;
    }
    const scid = h.scid.subarray(0, Number(h.scidLength[0]));
    const dcid = h.dcid.subarray(0, Number(h.dcidLength[0]));
    const token = h.token.subarray(0, Number(h.tokenLength[0]));
    const version = h.version[0];
    if (!(packet[0] & 0x80)) {
      this.stats.unknownConnectionDropped++;
      return undefined;
    }
    const server = this.#server!;
    const virtual = isVirtualSockaddr(peer);
    if (server.acceptVirtualOnly && !virtual) {
      this.stats.nonVirtualDropped++;
      return undefined;
    }
    if (!q.quiche_version_is_supported(version)) {
      if (length < MIN_CLIENT_INITIAL_LEN) {
        this.stats.unknownConnectionDropped++;
        return undefined;
      }
      this.stats.versionNegotiations++;
      const n = q.quiche_negotiate_version(
        scid,
        BigInt(scid.length),
        dcid,
        BigInt(dcid.length),
        h.out,
        BigInt(h.out.length),
      );
      if (n > 0) this.#socket.sendTo(h.out.subarray(0, n), peer);
      return undefined;
    }
    if (h.type[0] !== PacketType.Initial || length < MIN_CLIENT_INITIAL_LEN) {
      this.stats.unknownConnectionDropped++;
      return undefined;
    }
    // The sockaddr proper (a receive buffer's peer slot is longer).
    const address = peer.subarray(0, this.localSockaddr.length);
    const peerKey = cidKey(address);
    // One connection per virtual peer: the client's repeated Initials to the DCID
    // it chose are routed to its connection and never get here.
    if (virtual && this.#virtualServerConnections.has(peerKey)) {
      this.stats.duplicateVirtualDropped++;
      return undefined;
    }
    let odcid: Uint8Array | null = null;
    let localCid: Uint8Array;
    // A virtual peer's path was already validated by the transport it came through.
    if ((server.retry ?? true) && !virtual) {
      if (token.length === 0) {
        const newCid = newConnectionId();
        const minted = this.#retryTokens.mint(address, dcid, newCid);
        const n = q.quiche_retry(
          scid,
          BigInt(scid.length),
          dcid,
          BigInt(dcid.length),
          newCid,
          BigInt(newCid.length),
          minted,
          BigInt(minted.length),
          version,
          h.out,
          BigInt(h.out.length),
        );
        this.stats.retries++;
        if (n > 0) this.#socket.sendTo(h.out.subarray(0, n), peer);
        return undefined;
      }
      // Bound to this DCID: a replay to another DCID fails, and one to the same DCID
      // reached the connection it made (if still alive) through the route map.
      odcid = this.#retryTokens.validate(token, address, dcid);
      if (odcid === null || dcid.length !== LOCAL_CID_LENGTH) {
        this.stats.invalidTokens++;
        return undefined;
      }
      localCid = dcid.slice();
    } else {
      localCid = newConnectionId();
    }
    const source = sourceKey(address);
    const refusal = this.#handshakes.refusal(source);
    if (refusal !== null) {
      this.stats.handshakesRefused++;
      this.#refusedReport.note({ peer: address.slice(), refusal });
      return undefined;
    }
    const local = this.localSockaddr;
    const pointer = q.quiche_accept(
      localCid,
      BigInt(localCid.length),
      odcid,
      BigInt(odcid?.length ?? 0),
      local,
      local.length,
      peer,
      local.length,
      server.config.pointer,
    );
    if (pointer === null) {
      this.stats.acceptFailures++;
      return undefined;
    }
    const connection = new Connection(pointer, this, localCid, true, decodeSockaddr(peer));
    // Without retry the client keeps sending Initials to the DCID it chose until it
    // hears from us; route those to the same connection.
    if (odcid === null) connection.addRoute(dcid.slice());
    this.#connections.add(connection);
    this.#handshakes.add(connection, source);
    this.#handshakeDeadlines.set(connection, performance.now() + this.#handshakeTimeoutMs);
    if (virtual) this.#virtualServerConnections.set(peerKey, connection);
    return connection;
  }

  /** Frees server connections whose handshake did not complete in time, telling each peer. */
  #onHandshakeTimeouts(due: Connection[]): void {
    const q = quiche();
    const reason = new TextEncoder().encode("handshake timeout");
    for (const connection of due) {
      if (connection.isClosed || connection.isEstablished) continue;
      this.stats.handshakesTimedOut++;
      // One CONNECTION_CLOSE goes out; the state is freed now, without draining.
      q.quiche_conn_close(
        connection.pointer,
        false,
        BigInt(CONNECTION_REFUSED),
        reason,
        BigInt(reason.length),
      );
      this.#produce(connection);
      this.#finish(connection);
    }
    this.#socket.flush();
  }

  #warnRefused(count: number, peer: Uint8Array, refusal: HandshakeRefusal): void {
    log.warn(
      "dropped {count} Initial(s) that would start a QUIC handshake past the limits " +
        "({maxHandshakes} in progress, {maxPerAddress} per source address) since the last " +
        "report, {total} in all; the latest from {peer}, over the {refusal} limit",
      {
        count,
        total: this.stats.handshakesRefused,
        maxHandshakes: this.#handshakes.maxTotal,
        maxPerAddress: this.#handshakes.maxPerAddress,
        peer: formatAddress(decodeSockaddr(peer)),
        refusal,
      },
    );
  }

  /**
   * Closes every connection (sending CONNECTION_CLOSE), frees them, and closes
   * the socket. Connections' `closed` promises resolve.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    const q = quiche();
    for (const connection of this.#connections) {
      if (connection.isClosed) continue;
      const reason = new TextEncoder().encode("endpoint closing");
      q.quiche_conn_close(connection.pointer, true, 0n, reason, BigInt(reason.length));
      this.#produce(connection);
    }
    this.#socket.flush();
    this.#closed = true;
    this.#scheduler.clear();
    this.#handshakeDeadlines.clear();
    this.#refusedReport.flush();
    for (const connection of [...this.#connections]) this.#finish(connection);
    await this.#socket.close();
    await this.#receiving.catch(() => {});
  }
}
