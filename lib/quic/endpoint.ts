/**
 * A QUIC endpoint: one UDP socket hosting client and server connections at
 * once. Incoming packets are routed by destination connection ID; unknown
 * Initials are answered with version negotiation or a stateless retry, or
 * accepted; every connection's timer is driven by one earliest-deadline
 * scheduler; outgoing packets leave in `sendmmsg` batches.
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
import { RetryTokens } from "./retry_token.ts";
import type { Unsubscribe } from "../events/listeners.ts";

const MAX_DATAGRAM_N = BigInt(MAX_DATAGRAM);
/** CRYPTO_ERROR carrying TLS alert 116, certificate_required (RFC 8446 §6.2, RFC 9001 §4.8). */
const TLS_ALERT_CERTIFICATE_REQUIRED = 0x100 + 116;
const log = getLogger(["ztna", "quic"]);

/** Server side of an endpoint. */
export interface ServerOptions {
  /** Configuration for accepted connections (certificate, ALPN, client verification). */
  config: QuicConfig;
  /** Validate client addresses with a stateless retry before accepting (default true). */
  retry?: boolean;
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
 * Endpoint counters. Every received packet is counted exactly once: routed to a
 * connection, or in one of the drop/answer counters before `connectionsAccepted`.
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
  /** Initials whose retry token was forged, stale or for another address, dropped. */
  invalidTokens: number;
  /** Initials quiche would not accept, dropped. */
  acceptFailures: number;
  /** Packets quiche refused with an error (protocol violation, ...); a subset of routed ones. */
  rejectedByQuic: number;
  connectionsAccepted: number;
  /** Handshakes refused because the client sent no certificate. */
  clientCertificateMissing: number;
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
    acceptFailures: 0,
    rejectedByQuic: 0,
    connectionsAccepted: 0,
    clientCertificateMissing: 0,
  };
  /** Secret for stateless reset tokens. */
  readonly resetSecret = crypto.getRandomValues(new Uint8Array(32));

  readonly #socket: UdpSocket;
  readonly #recvInfos: Uint8Array[];
  readonly #sendInfo = new Uint8Array(SendInfo.size);
  readonly #server: ServerOptions | undefined;
  readonly #retryTokens = new RetryTokens();
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

  private constructor(socket: UdpSocket, server: ServerOptions | undefined) {
    this.#socket = socket;
    this.#server = server;
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

  /** Binds an endpoint's socket; with `server`, it also accepts connections. */
  static bind(options: EndpointOptions): Endpoint {
    quiche();
    return new Endpoint(UdpSocket.bind(options.address), options.server);
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
    const server = this.#server!;
    let odcid: Uint8Array | null = null;
    let localCid: Uint8Array;
    // A virtual peer's path was already validated by the transport it came through.
    if ((server.retry ?? true) && !isVirtualSockaddr(peer)) {
      if (token.length === 0) {
        const newCid = newConnectionId();
        const minted = this.#retryTokens.mint(peer, dcid);
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
      odcid = this.#retryTokens.validate(token, peer);
      if (odcid === null || dcid.length !== LOCAL_CID_LENGTH) {
        this.stats.invalidTokens++;
        return undefined;
      }
      localCid = dcid.slice();
    } else {
      localCid = newConnectionId();
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
    return connection;
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
    for (const connection of [...this.#connections]) this.#finish(connection);
    await this.#socket.close();
    await this.#receiving.catch(() => {});
  }
}
