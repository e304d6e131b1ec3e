/**
 * One QUIC connection hosted by an Endpoint: a typed wrapper around a native
 * `quiche_conn` that turns its state into events (established, datagrams,
 * streams, path events, closed) and frees it exactly once.
 */
import { type Quiche, quiche } from "../../ffi/quiche.ts";
import {
  PathEventType,
  PathStats,
  QUICHE_ERR_DONE,
  SOCKADDR_STORAGE_SIZE,
  Stats,
} from "../../ffi/quiche_constants.ts";
import { decodeSockaddr, type SocketAddress } from "../net/address.ts";
import { newConnectionId, resetToken } from "./connection_id.ts";
import { type CloseReason, ConnectionClosedError, QuicheError } from "./errors.ts";
import { QuicStream, type StreamHost } from "./stream.ts";
import { Listeners, type Unsubscribe } from "../events/listeners.ts";

/** A change on one of the connection's network paths; quiche reports every kind. */
export type PathEvent =
  | {
    type: "new" | "validated" | "failed-validation" | "closed" | "peer-migrated";
    local: SocketAddress;
    peer: SocketAddress;
  }
  | { type: "pmtu-updated"; local: SocketAddress; peer: SocketAddress; pmtu: number }
  | {
    /** The peer now uses the source connection ID `sequence` on a new path. */
    type: "reused-scid";
    local: SocketAddress;
    peer: SocketAddress;
    sequence: number;
    oldLocal: SocketAddress;
    oldPeer: SocketAddress;
  };

/** Validation state of a path (quiche's `PathState`). */
export type PathState = "failed" | "unknown" | "validating" | "validating-mtu" | "validated";
const PATH_STATES: Record<number, PathState> = {
  [-1]: "failed",
  0: "unknown",
  1: "validating",
  2: "validating-mtu",
  3: "validated",
};

/** Counters of one connection, from quiche. */
export interface ConnectionStats {
  packetsReceived: number;
  packetsSent: number;
  packetsLost: number;
  bytesSent: number;
  bytesReceived: number;
  datagramsReceived: number;
  datagramsSent: number;
  /** DATAGRAMs dropped locally because the send queue was full or they were too large. */
  datagramsDropped: number;
  paths: number;
}

/** Statistics of one network path. */
export interface PathStatistics {
  local: SocketAddress;
  peer: SocketAddress;
  state: PathState;
  active: boolean;
  rttMs: number;
  minRttMs: number;
  cwnd: number;
  pmtu: number;
  packetsReceived: number;
  packetsSent: number;
  packetsLost: number;
  bytesReceived: number;
  bytesSent: number;
  datagramsReceived: number;
  datagramsSent: number;
}

/** What a connection needs from the endpoint that hosts it. */
export interface ConnectionHost {
  /** The endpoint's local sockaddr, as given to quiche. */
  readonly localSockaddr: Uint8Array;
  /** Encodes a peer address for the endpoint's socket. */
  sockaddrFor(address: SocketAddress): Uint8Array;
  /** Schedules a send pass for this connection. */
  wake(connection: Connection): void;
  /** Routes packets for one more of this connection's IDs to it. */
  addConnectionId(connection: Connection, cid: Uint8Array): void;
  /** Stops routing a connection ID. */
  removeConnectionId(cid: Uint8Array): void;
  /** Secret for stateless reset tokens. */
  readonly resetSecret: Uint8Array;
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const DATAGRAM_BUFFER = 65_536;
const DATAGRAM_BUFFER_N = BigInt(DATAGRAM_BUFFER);
/**
 * DATAGRAM receive buffers by nesting depth: a handler may feed a packet to
 * another connection (a session inside a relay connection), whose DATAGRAMs
 * are then delivered while the outer delivery is still running.
 */
const datagramBuffers: Uint8Array[] = [];
let datagramDepth = 0;

/** Scratch memory shared by every connection (JS is single-threaded). */
const scratch = {
  pointer: new BigUint64Array(1),
  length: new BigUint64Array(1),
  u64: new BigUint64Array(1),
  flag: new Uint8Array(1),
  isApp: new Uint8Array(1),
  code: new BigUint64Array(1),
  reasonPointer: new BigUint64Array(1),
  reasonLength: new BigUint64Array(1),
  stats: new Uint8Array(Stats.size),
  pathStats: new Uint8Array(PathStats.size),
  local: new Uint8Array(SOCKADDR_STORAGE_SIZE),
  localLength: new Uint32Array(1),
  peer: new Uint8Array(SOCKADDR_STORAGE_SIZE),
  peerLength: new Uint32Array(1),
  pmtu: new BigUint64Array(1),
};
const u8 = (array: BigUint64Array | Uint32Array) => new Uint8Array(array.buffer);
/** The old path's addresses of a "reused source connection ID" event. */
const reusedScratch = {
  local: new Uint8Array(SOCKADDR_STORAGE_SIZE),
  localLength: u8(new Uint32Array([SOCKADDR_STORAGE_SIZE])),
  peer: new Uint8Array(SOCKADDR_STORAGE_SIZE),
  peerLength: u8(new Uint32Array([SOCKADDR_STORAGE_SIZE])),
};
const scratchBytes = {
  pointer: u8(scratch.pointer),
  length: u8(scratch.length),
  u64: u8(scratch.u64),
  code: u8(scratch.code),
  reasonPointer: u8(scratch.reasonPointer),
  reasonLength: u8(scratch.reasonLength),
  localLength: u8(scratch.localLength),
  peerLength: u8(scratch.peerLength),
  pmtu: u8(scratch.pmtu),
};

/**
 * The longest close reason sent: a CONNECTION_CLOSE must fit one packet, and a
 * reason quoting a peer's input (a 64 KiB message type) would not.
 */
export const MAX_CLOSE_REASON_BYTES = 256;

/** `reason` as UTF-8, cut to MAX_CLOSE_REASON_BYTES on a character boundary (with "…"). */
function closeReasonBytes(reason: string): Uint8Array {
  const bytes = new TextEncoder().encode(reason);
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return bytes;
  const ellipsis = new TextEncoder().encode("…");
  let end = MAX_CLOSE_REASON_BYTES - ellipsis.length;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  const out = new Uint8Array(end + ellipsis.length);
  out.set(bytes.subarray(0, end));
  out.set(ellipsis, end);
  return out;
}

/** Copies `length` bytes from native memory at `address`. */
function copyNative(address: bigint, length: number): Uint8Array {
  if (length === 0 || address === 0n) return new Uint8Array(0);
  const pointer = Deno.UnsafePointer.create(address);
  return new Uint8Array(new Deno.UnsafePointerView(pointer!).getArrayBuffer(length)).slice();
}

/** Calls a quiche getter of shape `(conn, const uint8_t **out, size_t *len)` and copies the bytes. */
function readBytes(
  getter: (conn: Deno.PointerObject, out: Uint8Array, len: Uint8Array) => void,
  conn: Deno.PointerObject,
): Uint8Array {
  scratch.pointer[0] = 0n;
  scratch.length[0] = 0n;
  getter(conn, scratchBytes.pointer, scratchBytes.length);
  return copyNative(scratch.pointer[0], Number(scratch.length[0]));
}

/** A QUIC connection (client or server side). */
export class Connection implements StreamHost {
  /** True for connections this endpoint accepted. */
  readonly isServer: boolean;
  /** The peer's address when the connection was created. */
  readonly initialPeer: SocketAddress;
  /**
   * Resolves when the handshake completes on this side; rejects if the connection
   * closes first. A client completes one flight before the server, so a server
   * that refuses the client's certificate is seen as a close after this.
   */
  readonly established: Promise<void>;
  /** Resolves with the reason once the connection is closed and freed. */
  readonly closed: Promise<CloseReason>;
  readonly #datagrams = new Listeners<Uint8Array>();
  readonly #streamsOpened = new Listeners<QuicStream>();
  readonly #paths = new Listeners<PathEvent>();

  #pointer: Deno.PointerObject | null;
  readonly #host: ConnectionHost;
  readonly #cids: Uint8Array[] = [];
  readonly #streams = new Map<number, QuicStream>();
  #nextLocalStream: number;
  #isEstablished = false;
  /** Set once this end closed the connection (its CONNECTION_CLOSE is queued or sent). */
  #closeSent = false;
  #peerCertificate: Uint8Array | null = null;
  #alpn = "";
  #datagramsDropped = 0;
  #resolveEstablished!: () => void;
  #rejectEstablished!: (error: Error) => void;
  #resolveClosed!: (reason: CloseReason) => void;
  #closeReason: CloseReason | null = null;
  #finalStats: ConnectionStats | null = null;
  /** True once the connection has (or had) more than one path. */
  #multiPath = false;
  /** The active path's peer sockaddr, or null until computed after a path change. */
  #activePeer: Uint8Array | null = null;

  /** For Endpoint: wraps a native connection routed by `cid`. */
  constructor(
    pointer: Deno.PointerObject,
    host: ConnectionHost,
    cid: Uint8Array,
    isServer: boolean,
    peer: SocketAddress,
  ) {
    this.#pointer = pointer;
    this.#host = host;
    this.isServer = isServer;
    this.initialPeer = peer;
    this.#nextLocalStream = isServer ? 1 : 0;
    this.established = new Promise((resolve, reject) => {
      this.#resolveEstablished = resolve;
      this.#rejectEstablished = reject;
    });
    // A handshake that fails is also reported through `closed`; don't let an
    // unobserved `established` rejection crash the process.
    this.established.catch(() => {});
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#cids.push(cid);
    host.addConnectionId(this, cid);
  }

  /** The native connection, for lib/quic only; throws once freed. */
  get pointer(): Deno.PointerObject {
    if (this.#pointer === null) throw new Error("connection used after it was freed");
    return this.#pointer;
  }

  /** True once the handshake completed. */
  get isEstablished(): boolean {
    return this.#isEstablished;
  }

  /** True once the connection is closed and freed. */
  get isClosed(): boolean {
    return this.#pointer === null;
  }

  /**
   * True from the moment either end closed the connection: while it drains (nothing more
   * can be sent on it) and once it is freed.
   */
  get isClosing(): boolean {
    if (this.#pointer === null || this.#closeSent) return true;
    const q = quiche();
    return q.quiche_conn_is_draining(this.#pointer) || q.quiche_conn_is_closed(this.#pointer);
  }

  /** The peer's leaf certificate (DER), once established; null if it sent none. */
  get peerCertificate(): Uint8Array | null {
    return this.#peerCertificate;
  }

  /** The negotiated ALPN protocol, once established. */
  get alpn(): string {
    return this.#alpn;
  }

  /** Calls `listener` with each received DATAGRAM; the bytes are valid only during the call. */
  onDatagram(listener: (data: Uint8Array) => void): Unsubscribe {
    return this.#datagrams.add(listener);
  }

  /** Calls `listener` for each stream the peer opens. */
  onStream(listener: (stream: QuicStream) => void): Unsubscribe {
    return this.#streamsOpened.add(listener);
  }

  /** Calls `listener` for each path event (every kind quiche reports). */
  onPath(listener: (event: PathEvent) => void): Unsubscribe {
    return this.#paths.add(listener);
  }

  /** Largest DATAGRAM payload that fits a packet now (0 if the peer does not accept DATAGRAMs). */
  get maxDatagramSize(): number {
    if (this.#pointer === null) return 0;
    const length = quiche().quiche_conn_dgram_max_writable_len(this.#pointer);
    return length < 0 ? 0 : length;
  }

  /**
   * Queues a DATAGRAM. Returns false, counting a drop, if the send queue is full,
   * the payload is larger than `maxDatagramSize` or the connection is closed:
   * DATAGRAMs are unreliable by design and never wait.
   */
  sendDatagram(data: Uint8Array): boolean {
    if (this.#pointer === null) {
      this.#datagramsDropped++;
      return false;
    }
    const code = quiche().quiche_conn_dgram_send(this.#pointer, data, BigInt(data.length));
    if (code < 0) {
      this.#datagramsDropped++;
      return false;
    }
    this.#host.wake(this);
    return true;
  }

  /** Sends a PING (keeps NAT mappings and the idle timer alive); no-op once closed. */
  ping(): void {
    if (this.#pointer === null) return;
    quiche().quiche_conn_send_ack_eliciting(this.#pointer);
    this.#host.wake(this);
  }

  /** Opens a new bidirectional stream. */
  openStream(): QuicStream {
    const id = this.#nextLocalStream;
    this.#nextLocalStream += 4;
    const stream = new QuicStream(id, this, true);
    this.#streams.set(id, stream);
    return stream;
  }

  /**
   * Starts validating the path to `peer` from this endpoint's socket (RFC 9000
   * §8.2; a known path is probed again). Each call before the next send makes one
   * PATH_CHALLENGE. Returns the sequence number of the destination connection ID
   * the path uses. Throws QuicheError (e.g. OutOfIdentifiers, InvalidState on a server).
   */
  probePath(peer: SocketAddress): number {
    return this.#changePath(quiche().quiche_conn_probe_path, peer, "probing path to");
  }

  /**
   * Moves the connection onto the path to `peer` (client side only); returns the
   * sequence number of the destination connection ID it uses.
   */
  migrate(peer: SocketAddress): number {
    return this.#changePath(quiche().quiche_conn_migrate, peer, "migrating to");
  }

  /** Calls a quiche path function for (our socket, `peer`) and schedules the packets it causes. */
  #changePath(
    call: Quiche["quiche_conn_probe_path"],
    peer: SocketAddress,
    what: string,
  ): number {
    const local = this.#host.localSockaddr;
    const remote = this.#host.sockaddrFor(peer);
    const code = call(this.pointer, local, local.length, remote, remote.length, scratchBytes.u64);
    if (code < 0) throw new QuicheError(`${what} ${peer.hostname}:${peer.port}`, code);
    this.#pathsChanged();
    this.#host.wake(this);
    return Number(scratch.u64[0]);
  }

  #pathsChanged(): void {
    this.#multiPath = true;
    this.#activePeer = null;
  }

  /**
   * For Endpoint: the active path's peer sockaddr when the connection has
   * several paths (so its send loop can serve the active one too), else null.
   */
  activePeerSockaddr(): Uint8Array | null {
    if (!this.#multiPath || this.#pointer === null) return null;
    if (this.#activePeer === null) {
      const active = this.activePath();
      if (!active) return null;
      this.#activePeer = this.#host.sockaddrFor(active.peer);
    }
    return this.#activePeer;
  }

  /** Sends an ack-eliciting packet (a PING) on the known path to `peer`; false if there is none. */
  pingPath(peer: SocketAddress): boolean {
    if (this.#pointer === null) return false;
    const local = this.#host.localSockaddr;
    const remote = this.#host.sockaddrFor(peer);
    const code = quiche().quiche_conn_send_ack_eliciting_on_path(
      this.#pointer,
      local,
      local.length,
      remote,
      remote.length,
    );
    if (code < 0) return false;
    this.#host.wake(this);
    return true;
  }

  /**
   * Retires the destination connection ID `sequence` (a failed path's), so the
   * peer issues a fresh one. Returns false when quiche refuses (the last usable ID).
   */
  retireDestinationId(sequence: number): boolean {
    if (this.#pointer === null) return false;
    const code = quiche().quiche_conn_retire_dcid(this.#pointer, BigInt(sequence));
    if (code < 0) return false;
    this.#host.wake(this);
    return true;
  }

  /** The path non-probing packets use now, or undefined once closed. */
  activePath(): PathStatistics | undefined {
    if (this.#pointer === null) return undefined;
    return this.pathStats().find((path) => path.active);
  }

  /** Closes the connection with an application error code and reason. */
  close(code = 0, reason = ""): void {
    this.#close(true, code, reason);
  }

  /** For Endpoint: closes with a transport error code (e.g. a TLS alert, 0x100 + alert). */
  closeWithTransportError(code: number, reason: string): void {
    this.#close(false, code, reason);
  }

  #close(isApplication: boolean, code: number, reason: string): void {
    if (this.#pointer === null) return;
    this.#closeSent = true;
    const bytes = closeReasonBytes(reason);
    quiche().quiche_conn_close(
      this.#pointer,
      isApplication,
      BigInt(code),
      bytes,
      BigInt(bytes.length),
    );
    this.#host.wake(this);
  }

  /** Counters from quiche; after close, the counters as they were when it closed. */
  stats(): ConnectionStats {
    if (this.#pointer === null) return this.#finalStats!;
    quiche().quiche_conn_stats(this.#pointer, scratch.stats);
    const view = new DataView(scratch.stats.buffer);
    const field = (offset: number) => Number(view.getBigUint64(offset, true));
    return {
      packetsReceived: field(Stats.recv),
      packetsSent: field(Stats.sent),
      packetsLost: field(Stats.lost),
      bytesSent: field(Stats.sentBytes),
      bytesReceived: field(Stats.recvBytes),
      datagramsReceived: field(Stats.dgramRecv),
      datagramsSent: field(Stats.dgramSent),
      datagramsDropped: this.#datagramsDropped,
      paths: field(Stats.pathsCount),
    };
  }

  /** Statistics of each path quiche tracks. */
  pathStats(): PathStatistics[] {
    const q = quiche();
    const out: PathStatistics[] = [];
    const view = new DataView(scratch.pathStats.buffer);
    const field = (offset: number) => Number(view.getBigUint64(offset, true));
    for (let i = 0n; q.quiche_conn_path_stats(this.pointer, i, scratch.pathStats) === 0; i++) {
      out.push({
        local: decodeSockaddr(scratch.pathStats.subarray(PathStats.localAddr)),
        peer: decodeSockaddr(scratch.pathStats.subarray(PathStats.peerAddr)),
        state: PATH_STATES[Number(view.getBigInt64(PathStats.validationState, true))] ??
          "unknown",
        active: scratch.pathStats[PathStats.active] !== 0,
        rttMs: field(PathStats.rtt) / 1e6,
        minRttMs: field(PathStats.minRtt) / 1e6,
        cwnd: field(PathStats.cwnd),
        pmtu: field(PathStats.pmtu),
        packetsReceived: field(PathStats.recv),
        packetsSent: field(PathStats.sent),
        packetsLost: field(PathStats.lost),
        bytesReceived: field(PathStats.recvBytes),
        bytesSent: field(PathStats.sentBytes),
        datagramsReceived: field(PathStats.dgramRecv),
        datagramsSent: field(PathStats.dgramSent),
      });
    }
    return out;
  }

  // --- StreamHost -----------------------------------------------------------

  /** For QuicStream. */
  streamRecv(id: number, into: Uint8Array): { length: number; fin: boolean } {
    const n = quiche().quiche_conn_stream_recv(
      this.pointer,
      BigInt(id),
      into,
      BigInt(into.length),
      scratch.flag,
      scratchBytes.code,
    );
    if (n === QUICHE_ERR_DONE) return { length: -1, fin: false };
    if (n < 0) {
      const detail = n === -16 ? ` (peer reset it with code ${scratch.code[0]})` : "";
      throw new QuicheError(`reading stream ${id}${detail}`, n);
    }
    return { length: n, fin: scratch.flag[0] !== 0 };
  }

  /** For QuicStream. */
  streamSend(id: number, data: Uint8Array, fin: boolean): number {
    const n = quiche().quiche_conn_stream_send(
      this.pointer,
      BigInt(id),
      data,
      BigInt(data.length),
      fin,
      scratchBytes.code,
    );
    if (n === QUICHE_ERR_DONE) return 0;
    if (n < 0) {
      const detail = n === -15 ? ` (peer stopped it with code ${scratch.code[0]})` : "";
      throw new QuicheError(`writing stream ${id}${detail}`, n);
    }
    return n;
  }

  /** For QuicStream. */
  wake(): void {
    this.#host.wake(this);
  }

  /** For QuicStream. */
  streamDone(id: number): void {
    this.#streams.delete(id);
  }

  // --- Endpoint side --------------------------------------------------------

  /**
   * For Endpoint, after packets arrived or a timer fired: reports the handshake,
   * delivers DATAGRAMs and stream data, path events, and replenishes connection IDs.
   * `onEstablished` runs before any data is delivered, so handlers can be set in it.
   */
  processEvents(onEstablished: (connection: Connection) => void): void {
    const q = quiche();
    const conn = this.pointer;
    if (!this.#isEstablished && q.quiche_conn_is_established(conn)) {
      this.#isEstablished = true;
      const certificate = readBytes(q.quiche_conn_peer_cert, conn);
      this.#peerCertificate = certificate.length > 0 ? certificate : null;
      this.#alpn = new TextDecoder().decode(readBytes(q.quiche_conn_application_proto, conn));
      onEstablished(this);
      this.#resolveEstablished();
    }
    if (!this.#isEstablished) {
      // A refused handshake: report it now rather than after the draining period.
      if (q.quiche_conn_is_draining(conn)) {
        this.#rejectEstablished(
          new ConnectionClosedError("handshake failed", this.#readCloseReason(conn)),
        );
      }
      return;
    }
    this.#deliverDatagrams();
    this.#deliverStreams();
    this.#deliverPathEvents();
    this.#refreshConnectionIds();
  }

  #deliverDatagrams(): void {
    const q = quiche();
    const conn = this.pointer;
    const depth = datagramDepth++;
    const buffer = datagramBuffers[depth] ??= new Uint8Array(DATAGRAM_BUFFER);
    try {
      for (;;) {
        const n = q.quiche_conn_dgram_recv(conn, buffer, DATAGRAM_BUFFER_N);
        if (n < 0) break;
        this.#datagrams.emit(buffer.subarray(0, n));
        if (this.#pointer === null) return;
      }
    } finally {
      datagramDepth--;
    }
  }

  #deliverStreams(): void {
    const q = quiche();
    for (;;) {
      const next = q.quiche_conn_stream_readable_next(this.pointer);
      if (next < 0n) break;
      const id = Number(next);
      let stream = this.#streams.get(id);
      if (!stream) {
        const peerInitiated = (id & 1) === (this.isServer ? 0 : 1);
        if (!peerInitiated) continue;
        stream = new QuicStream(id, this);
        this.#streams.set(id, stream);
        this.#streamsOpened.emit(stream);
      }
      stream.notifyReadable();
      if (this.#pointer === null) return;
    }
    for (const stream of this.#streams.values()) {
      if (stream.writeBlocked) stream.notifyWritable();
    }
  }

  #deliverPathEvents(): void {
    const q = quiche();
    for (;;) {
      const event = q.quiche_conn_path_event_next(this.pointer);
      if (event === null) break;
      try {
        this.#pathsChanged();
        this.#paths.emit(this.#decodePathEvent(event));
      } finally {
        q.quiche_path_event_free(event);
      }
    }
  }

  #decodePathEvent(event: Deno.PointerObject): PathEvent {
    const q = quiche();
    const args = [
      event,
      scratch.local,
      scratchBytes.localLength,
      scratch.peer,
      scratchBytes.peerLength,
    ] as const;
    const addresses = () => ({
      local: decodeSockaddr(scratch.local),
      peer: decodeSockaddr(scratch.peer),
    });
    switch (q.quiche_path_event_type(event)) {
      case PathEventType.New:
        q.quiche_path_event_new(...args);
        return { type: "new", ...addresses() };
      case PathEventType.Validated:
        q.quiche_path_event_validated(...args);
        return { type: "validated", ...addresses() };
      case PathEventType.FailedValidation:
        q.quiche_path_event_failed_validation(...args);
        return { type: "failed-validation", ...addresses() };
      case PathEventType.Closed:
        q.quiche_path_event_closed(...args);
        return { type: "closed", ...addresses() };
      case PathEventType.PeerMigrated:
        q.quiche_path_event_peer_migrated(...args);
        return { type: "peer-migrated", ...addresses() };
      case PathEventType.PmtuUpdated:
        q.quiche_path_event_pmtu_updated(...args, scratchBytes.pmtu);
        return { type: "pmtu-updated", ...addresses(), pmtu: Number(scratch.pmtu[0]) };
      case PathEventType.ReusedSourceConnectionId: {
        const old = reusedScratch;
        q.quiche_path_event_reused_source_connection_id(
          event,
          scratchBytes.u64,
          old.local,
          old.localLength,
          old.peer,
          old.peerLength,
          scratch.local,
          scratchBytes.localLength,
          scratch.peer,
          scratchBytes.peerLength,
        );
        return {
          type: "reused-scid",
          ...addresses(),
          sequence: Number(scratch.u64[0]),
          oldLocal: decodeSockaddr(old.local),
          oldPeer: decodeSockaddr(old.peer),
        };
      }
      default:
        throw new Error(
          `quiche reported an unknown path event type ${q.quiche_path_event_type(event)}`,
        );
    }
  }

  /** Gives the peer spare connection IDs (so it can migrate) and forgets retired ones. */
  #refreshConnectionIds(): void {
    const q = quiche();
    const conn = this.pointer;
    while (q.quiche_conn_scids_left(conn) > 0) {
      const cid = newConnectionId();
      const token = resetToken(this.#host.resetSecret, cid);
      const code = q.quiche_conn_new_scid(
        conn,
        cid,
        BigInt(cid.length),
        token,
        false,
        scratchBytes.u64,
      );
      if (code < 0) break;
      this.#cids.push(cid);
      this.#host.addConnectionId(this, cid);
    }
    const iterator = q.quiche_conn_retired_scid_iter(conn);
    if (iterator === null) return;
    try {
      while (
        q.quiche_connection_id_iter_next(iterator, scratchBytes.pointer, scratchBytes.length)
      ) {
        const retired = copyNative(scratch.pointer[0], Number(scratch.length[0]));
        const index = this.#cids.findIndex((cid) => cid.every((b, i) => b === retired[i]));
        if (index >= 0) this.#cids.splice(index, 1);
        this.#host.removeConnectionId(retired);
      }
    } finally {
      q.quiche_connection_id_iter_free(iterator);
    }
  }

  /** For Endpoint: the next timer deadline (ms, `performance.now()` clock), or Infinity. */
  deadline(): number {
    const nanos = quiche().quiche_conn_timeout_as_nanos(this.pointer);
    return nanos === U64_MAX ? Infinity : performance.now() + Number(nanos) / 1e6;
  }

  /** For Endpoint: true once quiche considers the connection closed. */
  isClosedNative(): boolean {
    return quiche().quiche_conn_is_closed(this.pointer);
  }

  /** For Endpoint: also routes packets sent to `cid` (a client's original DCID). */
  addRoute(cid: Uint8Array): void {
    this.#cids.push(cid);
    this.#host.addConnectionId(this, cid);
  }

  /** For Endpoint: records why it closed, fails what waits on it, unroutes and frees it. */
  finish(): CloseReason {
    if (this.#closeReason) return this.#closeReason;
    const q = quiche();
    const conn = this.pointer;
    const reason = this.#readCloseReason(conn);
    this.#closeReason = reason;
    this.#finalStats = this.stats();
    for (const cid of this.#cids) this.#host.removeConnectionId(cid);
    this.#cids.length = 0;
    q.quiche_conn_free(conn);
    this.#pointer = null;
    const error = new ConnectionClosedError(
      this.#isEstablished ? "connection closed" : "handshake failed",
      reason,
    );
    for (const stream of this.#streams.values()) stream.fail(error);
    this.#streams.clear();
    if (!this.#isEstablished) this.#rejectEstablished(error);
    this.#resolveClosed(reason);
    return reason;
  }

  #readCloseReason(conn: Deno.PointerObject): CloseReason {
    const q = quiche();
    const read = (by: "peer" | "local", getter: typeof q.quiche_conn_peer_error) => {
      scratch.reasonPointer[0] = 0n;
      scratch.reasonLength[0] = 0n;
      if (
        !getter(
          conn,
          scratch.isApp,
          scratchBytes.code,
          scratchBytes.reasonPointer,
          scratchBytes.reasonLength,
        )
      ) return null;
      const reason = copyNative(scratch.reasonPointer[0], Number(scratch.reasonLength[0]));
      return {
        by,
        isApplication: scratch.isApp[0] !== 0,
        code: Number(scratch.code[0]),
        reason: new TextDecoder().decode(reason),
      };
    };
    return read("peer", q.quiche_conn_peer_error) ??
      read("local", q.quiche_conn_local_error) ??
      { by: "idle", isApplication: false, code: 0, reason: "" };
  }
}
