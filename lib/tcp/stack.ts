/**
 * A user-space TCP endpoint that only accepts connections (passive open), fed raw IPv4/IPv6
 * packets and answering with packets: demultiplexing by four-tuple, SYN handling with a
 * backlog, RSTs for segments no connection takes, one shared timer for every connection, and
 * deferred output (ACKs and data go out once per batch of received packets).
 */
import {
  isPacketError,
  parseIp,
  parseTcp,
  PROTOCOL_TCP,
  seqGt,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
} from "../packet/mod.ts";
import { DeadlineScheduler } from "../quic/deadline_scheduler.ts";
import { resolveTcpConfig, type TcpConfig, type TcpTuning } from "./config.ts";
import { TcpConnection } from "./connection.ts";
import { type TcpCounters, zeroCounters } from "./counters.ts";
import { flowKey, makeFlow, type TcpFlow } from "./flow.ts";
import { segmentArrives } from "./input.ts";
import { type TcpSharedBudget, UNLIMITED_BUDGET } from "./receive_budget.ts";
import { resetFor } from "./segment.ts";
import { Tcb, type TcbHost } from "./tcb.ts";

/** What a `TcpStack` is built from: where packets go, who gets connections, tunables. */
export interface TcpStackOptions extends TcpTuning {
  /**
   * Called with every outgoing IP packet (a fresh buffer the callee may keep, unless
   * `reuseSendBuffer`). A throw counts as a lost segment (`sendFailures`); TCP retransmits.
   */
  send(packet: Uint8Array): void;
  /**
   * `send` copies each packet before it returns (into a QUIC DATAGRAM, say), so connections'
   * segments may all be built in one reused buffer: no allocation per segment. Default false.
   */
  reuseSendBuffer?: boolean;
  /**
   * Called with each connection once its handshake completes. If it throws, the connection
   * is reset and the error propagates out of `receive()`.
   */
  onConnection(connection: TcpConnection, flow: TcpFlow): void;
  /** Whether to accept a SYN for `flow`; refused ones get a RST. Default: accept all. */
  accept?(flow: TcpFlow): boolean;
  /**
   * Connection slots and receive memory shared with other stacks: a SYN it does not admit
   * gets a RST, and windows are advertised only out of its reservations. Default: unlimited.
   */
  shared?: TcpSharedBudget;
}

/** A passive-open TCP endpoint for every address and port the packets it is fed carry. */
export class TcpStack {
  /** Live counters (read them; do not write). */
  readonly counters: TcpCounters = zeroCounters();
  readonly #config: TcpConfig;
  readonly #send: (packet: Uint8Array) => void;
  readonly #onConnection: (connection: TcpConnection, flow: TcpFlow) => void;
  readonly #accept: ((flow: TcpFlow) => boolean) | undefined;
  readonly #shared: TcpSharedBudget;
  readonly #tcbs = new Map<string, Tcb>();
  readonly #timers = new DeadlineScheduler<Tcb>((due) => {
    const now = performance.now();
    for (const tcb of due) tcb.onTimer(now);
  });
  readonly #dirty = new Set<Tcb>();
  #flushQueued = false;
  #closed = false;
  readonly #host: TcbHost;

  /** Validates the options (a RangeError names a bad tunable). */
  constructor(options: TcpStackOptions) {
    this.#config = resolveTcpConfig(options);
    this.#send = options.send;
    this.#onConnection = options.onConnection;
    this.#accept = options.accept;
    this.#shared = options.shared ?? UNLIMITED_BUDGET;
    this.#host = {
      config: this.#config,
      counters: this.counters,
      budget: this.#shared,
      transmit: (packet) => this.#transmit(packet),
      sendBuffer: options.reuseSendBuffer ? new Uint8Array(this.#config.mtu) : undefined,
      setDeadline: (tcb, at) => this.#timers.set(tcb, at),
      requestFlush: (tcb) => this.#requestFlush(tcb),
      established: (tcb) => this.#established(tcb),
      finished: (tcb) => this.#finished(tcb),
    };
  }

  /** Connections tracked now, in every state (TIME_WAIT and half-open included). */
  get size(): number {
    return this.#tcbs.size;
  }

  /**
   * Takes one incoming IP packet. Non-TCP and malformed packets (bad checksums included) are
   * counted and dropped; a segment no connection takes starts one (a SYN) or is answered
   * with a RST. Ignored once the stack is closed.
   */
  receive(packet: Uint8Array): void {
    if (this.#closed) return;
    const counters = this.counters;
    const ip = parseIp(packet);
    if (isPacketError(ip)) {
      counters.droppedMalformed++;
      return;
    }
    if (ip.protocol !== PROTOCOL_TCP) {
      counters.droppedNotTcp++;
      return;
    }
    const seg = parseTcp(ip);
    if (isPacketError(seg) || seg.srcPort === 0 || seg.dstPort === 0) {
      counters.droppedMalformed++;
      return;
    }
    counters.segmentsIn++;
    const now = performance.now();
    const key = flowKey(ip.src, ip.dst, seg.srcPort, seg.dstPort);
    const tcb = this.#tcbs.get(key);
    const syn = (seg.flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN;
    if (tcb && !(syn && tcb.state === "TIME_WAIT" && seqGt(seg.seq, tcb.rcvNxt))) {
      segmentArrives(tcb, seg, now);
      return;
    }
    // A new SYN above the old sequence space may reuse a TIME_WAIT four-tuple (RFC 6191).
    tcb?.finish();
    const ends = { local: ip.dst, remote: ip.src, localPort: seg.dstPort, remotePort: seg.srcPort };
    if (!syn) {
      this.#reply(resetFor(ip, seg));
      return;
    }
    const flow = makeFlow(ip.src, ip.dst, seg.srcPort, seg.dstPort);
    if (this.#accept && !this.#accept(flow)) {
      counters.synsDropped++;
      this.#reply(resetFor(ip, seg));
      return;
    }
    if (
      counters.connectionsHalfOpen >= this.#config.synBacklog ||
      this.#tcbs.size >= this.#config.maxConnections
    ) {
      counters.synsDropped++;
      return;
    }
    if (!this.#shared.enter()) {
      counters.synsDropped++;
      this.#reply(resetFor(ip, seg));
      return;
    }
    const created = new Tcb(this.#host, key, flow, ends, seg);
    this.#tcbs.set(key, created);
    created.sendSynAck(now);
  }

  /** Resets every connection (RST to each peer, streams fail) and stops all timers. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const tcb of [...this.#tcbs.values()]) {
      if (tcb.state === "TIME_WAIT" || tcb.state === "SYN_RECEIVED") tcb.finish();
      else tcb.terminate("stack-closed", "the TCP stack was closed", true);
    }
    this.#timers.clear();
    this.#dirty.clear();
  }

  #reply(packet: Uint8Array | undefined): void {
    if (!packet) return;
    this.counters.resetsSent++;
    this.#transmit(packet);
  }

  #transmit(packet: Uint8Array): void {
    this.counters.segmentsOut++;
    try {
      this.#send(packet);
    } catch {
      this.counters.sendFailures++;
    }
  }

  #requestFlush(tcb: Tcb): void {
    this.#dirty.add(tcb);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      const batch = [...this.#dirty];
      this.#dirty.clear();
      this.#flushQueued = false;
      const now = performance.now();
      for (const tcb of batch) tcb.flush(now);
    });
  }

  #established(tcb: Tcb): void {
    const connection = new TcpConnection(tcb);
    try {
      this.#onConnection(connection, tcb.flow);
    } catch (error) {
      tcb.abort("onConnection threw", error);
      throw error;
    }
  }

  #finished(tcb: Tcb): void {
    if (this.#tcbs.get(tcb.key) === tcb) {
      this.#tcbs.delete(tcb.key);
      this.#shared.leave();
    }
    this.#timers.delete(tcb);
    this.#dirty.delete(tcb);
  }
}
