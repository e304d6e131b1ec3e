/**
 * The transmission control block of one passively opened connection: sequence state, send
 * buffer and segmentation, retransmission (RFC 6298 timer; SACK/RACK loss recovery with the
 * pipe kept below the congestion window, RFC 6675 and RFC 8985; tail loss probes), zero-window
 * probes,
 * the receive window, ACK generation, state transitions and the connection's single timer.
 * Segment arrival is in `input.ts`; the application's side is `connection.ts`.
 */
import {
  seqAdd,
  seqDiff,
  seqGt,
  seqLt,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpOptions,
  type TcpSegment,
} from "../packet/mod.ts";
import { ByteRing } from "./byte_ring.ts";
import { mssFor, type TcpConfig, windowScaleFor } from "./config.ts";
import { CongestionControl } from "./congestion.ts";
import type { TcpCounters } from "./counters.ts";
import { TcpConnectionError, type TcpErrorCode } from "./errors.ts";
import { describeFlow, type TcpFlow } from "./flow.ts";
import { Reassembly } from "./reassembly.ts";
import { ReceiveQueue } from "./receive_queue.ts";
import { ReceiveReservation, type TcpSharedBudget } from "./receive_budget.ts";
import { RttEstimator } from "./rtt.ts";
import { SackScoreboard } from "./scoreboard.ts";
import { type LostRange, SentSegments } from "./sent_segments.ts";
import { buildSegment, type Endpoints, type OutgoingSegment } from "./segment.ts";
import { isActiveState, type TcpState } from "./state.ts";

/** What a control block needs from its stack. */
export interface TcbHost {
  readonly config: TcpConfig;
  readonly counters: TcpCounters;
  /** Receive memory shared with other connections (and stacks). */
  readonly budget: TcpSharedBudget;
  /** Hands a packet to the stack's `send` (counted; a throwing `send` loses the segment). */
  transmit(packet: Uint8Array): void;
  /** Where segments are built when `send` copies them (`reuseSendBuffer`); else fresh ones. */
  readonly sendBuffer: Uint8Array | undefined;
  /** Sets (Infinity: clears) the control block's one deadline, on `performance.now()` time. */
  setDeadline(tcb: Tcb, at: number): void;
  /** Asks for `flush()` once the current batch of work is done (a microtask). */
  requestFlush(tcb: Tcb): void;
  /** The handshake completed: hand the connection to the application. */
  established(tcb: Tcb): void;
  /** The control block reached CLOSED: forget it. */
  finished(tcb: Tcb): void;
}

/** What the application side is told. */
export interface TcbListener {
  /** Data became readable, the peer's FIN arrived, or the connection failed. */
  onReadable(): void;
  /** Send-buffer space was freed, our FIN was acknowledged, or the connection failed. */
  onWritable(): void;
  /** The connection ended: normally (both FINs done; TIME_WAIT or CLOSED) or with `error`. */
  onClosed(error: TcpConnectionError | undefined): void;
}

/** A send timing for one RTT sample: the sequence number that must be ACKed, and when. */
interface Timing {
  seq: number;
  at: number;
}

/** MSS assumed when the peer's SYN has none (RFC 9293 §3.7.1; RFC 8200 for IPv6). */
const DEFAULT_PEER_MSS = { 4: 536, 6: 1220 } as const;
/** The smallest MSS accepted from a peer. */
const MIN_MSS = 64;
/** Most SACK blocks sent (4 fit in the 40 option bytes without timestamps). */
const MAX_SACK_BLOCKS = 4;
/** A hole is lost once more than this many segments' worth above it is SACKed (RFC 6675). */
const LOST_THRESHOLD_SEGMENTS = 2;
/** Shortest probe timeout, ms: below it, ordinary jitter would fire probes in vain. */
const MIN_PROBE_TIMEOUT_MS = 2;

/** One connection's control block; fields are shared with `input.ts`. */
export class Tcb implements Endpoints {
  readonly host: TcbHost;
  readonly key: string;
  readonly flow: TcpFlow;
  /** The flow as text, for error messages. */
  readonly flowText: string;
  readonly local: Uint8Array;
  readonly remote: Uint8Array;
  readonly localPort: number;
  readonly remotePort: number;
  listener: TcbListener | undefined;
  state: TcpState = "SYN_RECEIVED";
  /** Why the connection failed, once it has. */
  error: TcpConnectionError | undefined;

  // Send side (RFC 9293 names). sndMax is the highest sequence number sent so far; sndNxt
  // falls back to sndUna after a retransmission timeout (go-back-N).
  readonly iss: number;
  sndUna: number;
  sndNxt: number;
  sndMax: number;
  /** The peer's window, scaled. */
  sndWnd: number;
  sndWl1: number;
  sndWl2: number;
  maxSndWnd: number;
  /** Whether both sides scale windows (the peer's SYN offered it; our SYN-ACK always agrees). */
  readonly scaling: boolean;
  /** Shift applied to the peer's window fields. */
  readonly sndScale: number;
  /** Largest payload we send. */
  readonly mss: number;
  readonly sendBuffer: ByteRing;
  /** Sequence number of the first byte in `sendBuffer`. */
  bufferSeq: number;
  /** The application closed its side: a FIN follows the buffered data. */
  finQueued = false;
  finAcked = false;
  readonly congestion: CongestionControl;
  readonly rtt: RttEstimator;
  timing: Timing | undefined;
  dupAcks = 0;
  /** What the peer SACKed above sndUna. */
  readonly scoreboard = new SackScoreboard();
  /** Segments in flight: SACKed, lost, when sent (loss detection and the pipe). */
  readonly sent = new SentSegments();
  /** Consecutive retransmission timeouts without progress. */
  retries = 0;
  /** Zero-window probes sent without any ACK in reply. */
  probes = 0;
  /** Doublings of the persist interval since the peer's window closed. */
  persistBackoff = 0;

  // Receive side.
  readonly irs: number;
  rcvNxt: number;
  /** The right edge of the window we advertised: data up to here is accepted. */
  rcvAdv: number;
  /** Shift applied to our window fields. */
  readonly rcvScale: number;
  /** Our MSS (what the SYN-ACK announced). */
  readonly rcvMss: number;
  /** The largest window our fields can express. */
  readonly maxRcvWindow: number;
  readonly sackPermitted: boolean;
  readonly queue = new ReceiveQueue();
  /** What this connection may hold of the shared receive budget; windows come out of it. */
  readonly reservation: ReceiveReservation;
  readonly reassembly: Reassembly;
  /** The peer's FIN sequence number once seen, in order or not. */
  finSeq: number | undefined;
  /** The peer's FIN has been reached in sequence. */
  finReceived = false;
  /** In-sequence data segments received since our last ACK. */
  unackedSegments = 0;
  /** An ACK is owed at the next flush. */
  ackPending = false;
  /** Bytes of the last chunk `read` returned: the application holds them until it reads on. */
  #delivered = 0;
  /** The stack forgot this block: no window is open any more. */
  #gone = false;

  // Timers, on performance.now() time; Infinity when off. `closeAt` ends TIME_WAIT or an
  // idle FIN_WAIT_2.
  rtoAt = Infinity;
  /** When RACK's reordering window runs out for a segment not yet deemed lost. */
  rackAt = Infinity;
  /** When to send a tail loss probe (RFC 8985 §7) if no ACK arrives first. */
  probeAt = Infinity;
  persistAt = Infinity;
  closeAt = Infinity;

  /** A control block in SYN_RECEIVED for the SYN `syn` from `remote` to `local`. */
  constructor(
    host: TcbHost,
    key: string,
    flow: TcpFlow,
    ends: Endpoints,
    syn: TcpSegment,
  ) {
    const config = host.config;
    this.host = host;
    this.key = key;
    this.flow = flow;
    this.flowText = describeFlow(flow);
    this.local = ends.local.slice();
    this.remote = ends.remote.slice();
    this.localPort = ends.localPort;
    this.remotePort = ends.remotePort;

    this.scaling = syn.options.windowScale !== undefined;
    this.sndScale = syn.options.windowScale ?? 0;
    this.rcvScale = this.scaling ? windowScaleFor(config.receiveWindow) : 0;
    this.rcvMss = mssFor(config.mtu, this.local.length);
    const peerMss = syn.options.mss ?? DEFAULT_PEER_MSS[flow.family];
    this.mss = Math.max(MIN_MSS, Math.min(peerMss, this.rcvMss));
    this.maxRcvWindow = Math.min(config.receiveWindow, 0xffff * 2 ** this.rcvScale);
    this.sackPermitted = syn.options.sackPermitted === true;

    this.iss = crypto.getRandomValues(new Uint32Array(1))[0];
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.bufferSeq = seqAdd(this.iss, 1);
    this.sndWnd = syn.window; // never scaled in a SYN
    this.maxSndWnd = syn.window;
    this.sndWl1 = syn.seq;
    this.sndWl2 = this.iss;
    this.sendBuffer = new ByteRing(config.sendBuffer);
    this.congestion = new CongestionControl(this.mss, this.iss);
    this.rtt = new RttEstimator(config.initialRtoMs, config.minRtoMs, config.maxRtoMs);

    this.irs = syn.seq;
    this.rcvNxt = seqAdd(syn.seq, 1);
    this.rcvAdv = this.rcvNxt;
    this.reassembly = new Reassembly(config.maxOutOfOrderSegments);
    this.reservation = new ReceiveReservation(host.budget);
    host.counters.connectionsHalfOpen++;
  }

  /** Sequence number just past the buffered data (where our FIN goes). */
  get dataEnd(): number {
    return seqAdd(this.bufferSeq, this.sendBuffer.length);
  }

  /** Sends (or resends) the SYN-ACK and keeps the retransmission timer running. */
  sendSynAck(now: number): void {
    const retransmission = seqGt(this.sndMax, this.iss);
    const open = this.#openWindow();
    const window = open + this.reservation.grow(open, Math.min(this.maxRcvWindow, 0xffff) - open);
    this.rcvAdv = seqAdd(this.rcvNxt, window);
    const options: TcpOptions = { mss: this.rcvMss };
    if (this.scaling) options.windowScale = this.rcvScale;
    if (this.sackPermitted) options.sackPermitted = true;
    this.#emit({ seq: this.iss, ack: this.rcvNxt, flags: TCP_SYN | TCP_ACK, window, options });
    if (retransmission) {
      this.host.counters.retransmissions++;
      this.timing = undefined;
    } else {
      this.timing = { seq: seqAdd(this.iss, 1), at: now };
    }
    this.sndNxt = this.sndMax = seqAdd(this.iss, 1);
    this.rtoAt = now + this.rtt.rto;
    this.rearm();
  }

  /** The handshake's ACK `seg` arrived: ESTABLISHED. */
  establish(seg: TcpSegment, now: number): void {
    if (this.timing && this.timing.seq === seg.ack) this.rtt.sample(now - this.timing.at);
    this.timing = undefined;
    this.sndUna = seg.ack;
    this.retries = 0;
    this.rtoAt = Infinity;
    this.sndWnd = seg.window * 2 ** this.sndScale;
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    this.setState("ESTABLISHED");
    this.host.counters.connectionsAccepted++;
    this.rearm();
    this.host.established(this);
  }

  /** Moves to `next`, keeping the stack's gauges right. */
  setState(next: TcpState): void {
    const counters = this.host.counters;
    const previous = this.state;
    if (previous === next) return;
    if (previous === "SYN_RECEIVED") counters.connectionsHalfOpen--;
    if (isActiveState(previous) && !isActiveState(next)) counters.connectionsActive--;
    if (!isActiveState(previous) && isActiveState(next)) counters.connectionsActive++;
    this.state = next;
  }

  // ---- The application's side.

  /**
   * The next unread data (also reopening the window), or undefined when none is queued. The
   * chunk returned stays reserved until the next call: the application is working on it.
   */
  read(): Uint8Array | undefined {
    const released = this.#delivered;
    const chunk = this.queue.take();
    this.#delivered = chunk?.length ?? 0;
    this.#settle();
    if ((chunk || released > 0) && this.#windowGrowth() > 0) this.ackLater();
    return chunk;
  }

  /** The application will read no more: unread data is dropped and its reservation freed. */
  discardUnread(): void {
    this.queue.clear();
    this.#delivered = 0;
    this.#settle();
  }

  /** Queues as much of `data` as the send buffer takes; returns how many bytes that was. */
  write(data: Uint8Array): number {
    const count = this.sendBuffer.push(data);
    if (count > 0) this.host.requestFlush(this);
    return count;
  }

  /** The application is done sending: a FIN follows the buffered data. */
  shutdownWrite(): void {
    if (this.finQueued) return;
    if (this.state === "ESTABLISHED") this.setState("FIN_WAIT_1");
    else if (this.state === "CLOSE_WAIT") this.setState("LAST_ACK");
    else return;
    this.finQueued = true;
    this.host.requestFlush(this);
  }

  /** Aborts: RST to the peer, streams fail with `detail`. No-op once finished. */
  abort(detail: string, cause?: unknown): void {
    if (this.state === "CLOSED" || this.state === "TIME_WAIT") return;
    this.terminate("aborted", `aborted: ${detail}`, true, cause);
  }

  // ---- Output.

  /** Runs deferred work: sends what the windows allow, then any owed ACK. */
  flush(now: number): void {
    if (this.state === "CLOSED") return;
    this.output(now);
    if (this.ackPending) this.sendAck();
  }

  /**
   * Resends segments deemed lost, then sends new (or, after a timeout, resent) data and our
   * FIN, as far as the peer's window and the congestion window (against the pipe) allow;
   * `force` sends one segment regardless (RTO retransmission).
   */
  output(now: number, force = false): void {
    if (this.state === "SYN_RECEIVED" || this.state === "TIME_WAIT" || this.state === "CLOSED") {
      return;
    }
    let sent = false;
    for (let lost = this.sent.firstLost(); lost; lost = this.sent.firstLost()) {
      if (!(force && !sent) && this.sent.pipe + this.mss > this.congestion.cwnd) break;
      if (!this.#resend(lost, now)) break;
      sent = true;
    }
    for (;;) {
      const flight = seqDiff(this.sndNxt, this.sndUna);
      const pending = seqDiff(this.dataEnd, this.sndNxt);
      // Limited transmit (RFC 3042): a new segment for each of the first two duplicate ACKs.
      const limited = this.congestion.inRecovery ? 0 : Math.min(this.dupAcks, 2) * this.mss;
      const usable = force && !sent
        ? this.mss
        : Math.min(this.sndWnd - flight, this.congestion.cwnd + limited - this.sent.pipe);
      let length = Math.max(0, Math.min(this.mss, pending, usable));
      // Sender silly-window avoidance: no small segment while data is in flight, unless it
      // is all there is to send.
      if (length < this.mss && length < pending && flight > 0 && !force) length = 0;
      const fin = this.finQueued && pending >= 0 && length === pending;
      if (length === 0 && !fin) break;
      this.#sendData(this.sndNxt, length, fin, now);
      this.sndNxt = seqAdd(this.sndNxt, length + (fin ? 1 : 0));
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      sent = true;
      if (fin) break;
    }
    const waiting = seqGt(this.dataEnd, this.sndNxt);
    if (this.sndWnd === 0 && this.sndUna === this.sndMax && waiting) {
      if (this.persistAt === Infinity) this.persistAt = now + this.#persistInterval();
    } else {
      this.persistAt = Infinity;
    }
    this.rearm();
  }

  /**
   * After an ACK (or RACK's timer): marks what the SACKs and RACK show lost; the first loss
   * of an episode cuts the congestion window and its first lost segment goes out at once
   * (fast retransmit), the rest as the pipe allows.
   */
  recoverLosses(now: number): void {
    const threshold = LOST_THRESHOLD_SEGMENTS * this.mss;
    this.rackAt = this.sent.detectLoss(now, threshold, this.rtt.srtt).recheckAt;
    if (this.sent.hasLost && this.congestion.enterRecovery(this.sndUna, this.sndMax)) {
      this.host.counters.fastRetransmits++;
      this.sent.onRecovery();
      const first = this.sent.firstLost();
      if (first) this.#resend(first, now);
    }
    if (this.sent.hasLost) this.host.requestFlush(this);
  }

  /** Resends the lost segment `lost` (its data and/or FIN); false if nothing of it is left. */
  #resend(lost: LostRange, now: number): boolean {
    const fin = this.finQueued && seqGt(lost.end, this.dataEnd);
    const end = fin ? this.dataEnd : lost.end;
    const length = Math.max(0, seqDiff(end, lost.start));
    if (length === 0 && !fin) return false;
    this.#sendData(lost.start, length, fin, now);
    return true;
  }

  /** One data (and/or FIN) segment from `seq`; counts retransmissions, times new data. */
  #sendData(seq: number, length: number, fin: boolean, now: number): void {
    const offset = seqDiff(seq, this.bufferSeq);
    const ring = this.sendBuffer;
    let flags = TCP_ACK;
    if (fin) flags |= TCP_FIN;
    if (length > 0 && offset + length === ring.length) flags |= TCP_PSH;
    this.#emit({
      seq,
      ack: this.rcvNxt,
      flags,
      window: this.#windowField(),
      payloadLength: length,
      fill: (out, at) => ring.copyTo(offset, length, out, at),
    });
    const end = seqAdd(seq, length + (fin ? 1 : 0));
    const retransmission = seqLt(seq, this.sndMax);
    if (end !== seq) this.sent.sent(seq, end, now, retransmission);
    if (retransmission) {
      this.host.counters.retransmissions++;
      this.timing = undefined; // Karn: no RTT sample from a retransmitted range
    } else if (!this.timing) {
      this.timing = { seq: end, at: now };
    }
    if (this.rtoAt === Infinity) this.rtoAt = now + this.rtt.rto;
    if (this.probeAt === Infinity) this.armProbe(now);
    this.#acked();
  }

  /** A pure ACK now (with SACK blocks when the peer allowed them and a gap exists). */
  sendAck(): void {
    let options: TcpOptions | undefined;
    if (this.sackPermitted && !this.reassembly.empty) {
      options = { sack: this.reassembly.sackBlocks(MAX_SACK_BLOCKS) };
    }
    this.#emit({
      seq: this.#acceptableSeq(),
      ack: this.rcvNxt,
      flags: TCP_ACK,
      window: this.#windowField(),
      options,
    });
    this.#acked();
  }

  /** In-sequence data arrived: ACK every second segment now, else at the next flush. */
  ackSoon(): void {
    if (++this.unackedSegments >= 2) this.sendAck();
    else this.ackLater();
  }

  /** Owes an ACK at the next flush. */
  ackLater(): void {
    this.ackPending = true;
    this.host.requestFlush(this);
  }

  #acked(): void {
    this.ackPending = false;
    this.unackedSegments = 0;
  }

  /** A zero-window probe: an old sequence number, so the peer answers with its window. */
  #sendProbe(): void {
    this.#emit({
      seq: seqAdd(this.sndUna, -1),
      ack: this.rcvNxt,
      flags: TCP_ACK,
      window: this.#windowField(),
    });
    this.#acked();
  }

  /** SND.NXT for segments without data, unless beyond the peer's window (as Linux does). */
  #acceptableSeq(): number {
    const windowEnd = seqAdd(this.sndUna, this.sndWnd);
    return seqGt(this.sndMax, windowEnd) ? windowEnd : this.sndMax;
  }

  /**
   * How far the right edge of our window could move: free buffer beyond what was already
   * advertised. Receiver silly-window avoidance (RFC 9293 §3.8.6.2.2): the edge moves only by
   * at least min(half the window, one MSS), so this is 0 below that.
   */
  #windowGrowth(): number {
    const free = Math.min(this.maxRcvWindow, this.host.config.receiveWindow - this.queue.bytes);
    const growth = seqDiff(seqAdd(this.rcvNxt, Math.max(0, free)), this.rcvAdv);
    return growth >= Math.min(this.maxRcvWindow / 2, this.rcvMss) ? growth : 0;
  }

  /**
   * The window field for a segment sent now, moving the advertised edge if it may: by what
   * the reservation covers, and (silly-window avoidance again) not by less than the minimum.
   */
  #windowField(): number {
    const growth = this.#windowGrowth();
    if (growth > 0) {
      const granted = this.reservation.grow(this.#promised(), growth);
      if (granted >= Math.min(this.maxRcvWindow / 2, this.rcvMss)) {
        this.rcvAdv = seqAdd(this.rcvAdv, granted);
      } else {
        this.#settle();
      }
    }
    return Math.min(0xffff, seqDiff(this.rcvAdv, this.rcvNxt) >>> this.rcvScale);
  }

  /** Bytes the advertised window still lets the peer send (0 once the stack forgot us). */
  #openWindow(): number {
    return this.#gone ? 0 : Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt));
  }

  /** Bytes this connection may have to hold: unread, in the application's hands, window open. */
  #promised(): number {
    return this.queue.bytes + this.#delivered + this.#openWindow();
  }

  /** Gives back the reservation beyond what is promised. */
  #settle(): void {
    this.reservation.settle(this.#promised(), !this.#gone);
  }

  /** Sends a RST now: `<SEQ=acceptable><ACK=RCV.NXT><CTL=RST,ACK>`. */
  sendReset(): void {
    this.#emit({
      seq: this.#acceptableSeq(),
      ack: this.rcvNxt,
      flags: TCP_RST | TCP_ACK,
      window: 0,
    });
    this.host.counters.resetsSent++;
  }

  /** Sends `<SEQ=seq><CTL=RST>`: the answer to an unacceptable ACK in SYN_RECEIVED. */
  sendResetAt(seq: number): void {
    this.#emit({ seq, ack: 0, flags: TCP_RST, window: 0 });
    this.host.counters.resetsSent++;
  }

  #emit(segment: OutgoingSegment): void {
    this.host.transmit(buildSegment(this, segment, this.host.sendBuffer));
  }

  // ---- Timers.

  /** Points the stack's deadline for this block at its earliest timer. */
  rearm(): void {
    this.host.setDeadline(
      this,
      Math.min(this.rtoAt, this.rackAt, this.probeAt, this.persistAt, this.closeAt),
    );
  }

  /** The deadline passed: handle whichever timers are due. */
  onTimer(now: number): void {
    if (this.closeAt <= now) {
      this.closeAt = Infinity;
      if (this.state === "TIME_WAIT") {
        this.finish();
      } else if (this.state === "FIN_WAIT_2") {
        this.terminate(
          "timeout",
          `no segment from the peer for ${this.host.config.finWait2TimeoutMs} ms in FIN_WAIT_2`,
          true,
        );
      }
      return;
    }
    if (this.rtoAt <= now) {
      this.#retransmissionTimeout(now);
    } else if (this.rackAt <= now) {
      this.rackAt = Infinity;
      this.recoverLosses(now);
      this.output(now);
    } else if (this.probeAt <= now) {
      this.probeAt = Infinity;
      this.#tailLossProbe(now);
    } else if (this.persistAt <= now) {
      this.#persistTimeout(now);
    }
    if (this.state !== "CLOSED") this.rearm();
  }

  #retransmissionTimeout(now: number): void {
    const config = this.host.config;
    this.rtoAt = Infinity;
    if (this.state === "SYN_RECEIVED") {
      if (this.retries >= config.maxSynAckRetransmissions) {
        this.setState("CLOSED");
        this.finish();
        return;
      }
      this.retries++;
      this.rtt.backoff();
      this.sendSynAck(now);
      return;
    }
    if (this.sndUna === this.sndMax) return;
    if (this.retries >= config.maxRetransmissions) {
      this.terminate(
        "timeout",
        `no acknowledgment after ${this.retries} retransmissions`,
        true,
      );
      return;
    }
    this.retries++;
    this.host.counters.retransmissionTimeouts++;
    this.rtt.backoff();
    this.congestion.onTimeout(seqDiff(this.sndMax, this.sndUna), this.sndMax);
    this.dupAcks = 0;
    this.scoreboard.clear();
    this.sent.clear();
    this.rackAt = this.probeAt = Infinity;
    this.sndNxt = this.sndUna;
    this.output(now, true);
    this.rtoAt = now + this.rtt.rto;
  }

  /**
   * (Re)arms the tail loss probe while data is in flight outside loss recovery (and not after
   * a retransmission timeout until new data is acknowledged): 2 SRTT after
   * now (plus the minimum RTO when one segment is out), if before the RTO.
   */
  armProbe(now: number): void {
    const srtt = this.rtt.srtt;
    const flight = seqDiff(this.sndMax, this.sndUna);
    if (srtt === undefined || flight === 0 || this.congestion.inRecovery || this.retries > 0) {
      this.probeAt = Infinity;
      return;
    }
    let timeout = Math.max(MIN_PROBE_TIMEOUT_MS, 2 * srtt);
    // One segment out: the peer may be delaying its ACK; wait as long as the minimum RTO
    // (as Linux does), so that probe never comes before the timer.
    if (flight <= this.mss) timeout += this.host.config.minRtoMs;
    const at = now + timeout;
    this.probeAt = at < this.rtoAt ? at : Infinity;
  }

  /**
   * No ACK for 2 SRTT: the last segments may all be lost, leaving no later delivery to
   * show it. Sends one new segment if the windows allow, else resends the highest one, so
   * its ACK (SACK) lets RACK find the loss instead of the retransmission timer.
   */
  #tailLossProbe(now: number): void {
    if (this.sndUna === this.sndMax) return;
    this.host.counters.tailLossProbes++;
    const pending = seqDiff(this.dataEnd, this.sndNxt) > 0 || (this.finQueued &&
      !seqGt(this.sndMax, this.dataEnd));
    const open = this.sndWnd - seqDiff(this.sndNxt, this.sndUna) >= this.mss;
    if (pending && open) {
      this.output(now, true);
    } else {
      const last = this.sent.last();
      if (last) this.#resend(last, now);
    }
    this.rtoAt = now + this.rtt.rto;
  }

  #persistTimeout(now: number): void {
    this.persistAt = Infinity;
    if (this.probes >= this.host.config.maxRetransmissions) {
      this.terminate("timeout", `${this.probes} zero-window probes went unanswered`, true);
      return;
    }
    this.probes++;
    this.persistBackoff++;
    this.#sendProbe();
    this.persistAt = now + this.#persistInterval();
  }

  #persistInterval(): number {
    return Math.min(this.host.config.maxRtoMs, this.rtt.rto * 2 ** this.persistBackoff);
  }

  // ---- Endings.

  /** Our FIN was acknowledged: FIN_WAIT_2, TIME_WAIT or CLOSED depending on the state. */
  onFinAcked(now: number): void {
    this.finAcked = true;
    if (this.state === "FIN_WAIT_1") {
      this.setState("FIN_WAIT_2");
      this.closeAt = now + this.host.config.finWait2TimeoutMs;
    } else if (this.state === "CLOSING") {
      this.enterTimeWait(now);
    } else if (this.state === "LAST_ACK") {
      this.setState("CLOSED");
      this.#release();
      this.listener?.onClosed(undefined);
      this.finish();
    }
  }

  /**
   * Both FINs are done and ours was acknowledged: linger in TIME_WAIT to ACK a resent FIN.
   * In TIME_WAIT already (the peer resent its FIN), restarts the timer.
   */
  enterTimeWait(now: number): void {
    this.closeAt = now + this.host.config.timeWaitMs;
    if (this.state !== "TIME_WAIT") {
      this.setState("TIME_WAIT");
      this.rtoAt =
        this.rackAt =
        this.probeAt =
        this.persistAt =
          Infinity;
      this.#release();
      this.listener?.onClosed(undefined);
    }
    this.rearm();
  }

  /** Ends the connection with an error, optionally sending a RST first. */
  terminate(code: TcpErrorCode, detail: string, reset: boolean, cause?: unknown): void {
    if (this.state === "CLOSED") return;
    const counters = this.host.counters;
    if (reset) this.sendReset();
    if (this.state !== "SYN_RECEIVED") counters.connectionsReset++;
    if (code === "timeout") counters.connectionsTimedOut++;
    this.error = new TcpConnectionError(code, this.flowText, detail, { cause });
    this.setState("CLOSED");
    this.#release();
    this.queue.clear();
    this.#delivered = 0;
    this.listener?.onClosed(this.error);
    this.finish();
  }

  /** The peer reset the connection. */
  resetByPeer(): void {
    if (this.state === "SYN_RECEIVED") {
      this.setState("CLOSED");
      this.finish();
      return;
    }
    this.terminate("reset", "connection reset by peer", false);
  }

  /** Leaves the stack: no more timers or segments. */
  finish(): void {
    this.setState("CLOSED");
    this.rtoAt =
      this.rackAt =
      this.probeAt =
      this.persistAt =
      this.closeAt =
        Infinity;
    this.#gone = true;
    this.#settle();
    this.host.finished(this);
  }

  #release(): void {
    this.sendBuffer.clear();
    this.reassembly.clear();
    this.sent.clear();
    this.timing = undefined;
  }
}
