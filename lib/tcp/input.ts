/**
 * Segment arrival for an existing connection (RFC 9293 §3.10.7.4, with RFC 5961's RST/SYN
 * challenge ACKs): sequence acceptability, RST, SYN, ACK (new data, duplicates, window
 * updates, our FIN acknowledged), data (in order or reassembled), and the peer's FIN.
 */
import {
  seqAdd,
  seqDiff,
  seqGe,
  seqGt,
  seqLe,
  seqLt,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  type TcpSegment,
} from "../packet/mod.ts";
import { acceptsData, type TcpState } from "./state.ts";
import type { Tcb } from "./tcb.ts";

/** Processes `seg`, received at `now`, for `tcb`. */
export function segmentArrives(tcb: Tcb, seg: TcpSegment, now: number): void {
  const flags = seg.flags;
  if (tcb.state === "SYN_RECEIVED" && (flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN) {
    // The peer resent its SYN: our SYN-ACK was lost (a different SYN is a stale duplicate).
    if (seg.seq === tcb.irs) tcb.sendSynAck(now);
    return;
  }
  const length = seg.payload.length + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0);
  const window = seqDiff(tcb.rcvAdv, tcb.rcvNxt);
  const offset = seqDiff(seg.seq, tcb.rcvNxt);
  if (!acceptable(offset, length, window)) {
    if (flags & TCP_RST) return;
    if (tcb.state === "TIME_WAIT" && flags & TCP_FIN) tcb.enterTimeWait(now); // resent FIN
    tcb.sendAck(); // a duplicate or out-of-window segment: tell the peer where we are
    return;
  }
  if (flags & TCP_RST) {
    if (offset === 0) tcb.resetByPeer();
    else tcb.sendAck(); // challenge ACK (RFC 5961 §3.2)
    return;
  }
  if (flags & TCP_SYN) {
    tcb.sendAck(); // challenge ACK (RFC 5961 §4.2)
    return;
  }
  if (!(flags & TCP_ACK)) return;
  if (tcb.state === "SYN_RECEIVED") {
    if (!seqGt(seg.ack, tcb.sndUna) || seqGt(seg.ack, tcb.sndMax)) {
      tcb.sendResetAt(seg.ack);
      return;
    }
    tcb.establish(seg, now);
    // onConnection may have aborted it already.
    if ((tcb.state as TcpState) === "CLOSED") return;
  } else {
    if (seqGt(seg.ack, tcb.sndMax)) {
      tcb.sendAck(); // acknowledges something never sent
      return;
    }
    if (seqLt(seg.ack, seqAdd(tcb.sndUna, -tcb.maxSndWnd))) {
      tcb.sendAck(); // too old to be an ACK of this connection (RFC 5961 §5.2)
      return;
    }
    processAck(tcb, seg, now);
    if (tcb.state === "CLOSED") return;
  }
  if (tcb.state === "FIN_WAIT_2") tcb.closeAt = now + tcb.host.config.finWait2TimeoutMs;
  let fin = (flags & TCP_FIN) !== 0;
  if (seg.payload.length > 0) {
    if (acceptsData(tcb.state)) {
      if (receiveData(tcb, seg.seq, seg.payload)) fin = false;
    } else {
      fin = false;
    }
  }
  if (fin && acceptsData(tcb.state)) tcb.finSeq = seqAdd(seg.seq, seg.payload.length);
  receiveFin(tcb, now);
  tcb.rearm();
}

/**
 * RFC 9293's acceptability test, plus: a segment overlapping the window at all is acceptable
 * (it is trimmed later), and at a zero window one starting exactly at RCV.NXT is, so its ACK
 * is processed and its data answered with an ACK (a FIN there is accepted: it needs no
 * buffer space).
 */
function acceptable(offset: number, length: number, window: number): boolean {
  if (length === 0) return window === 0 ? offset === 0 : offset >= 0 && offset < window;
  return (offset < window && offset + length > 0) || (window === 0 && offset === 0);
}

/** The ACK field (and SACK blocks) of `seg` for a synchronized connection. */
function processAck(tcb: Tcb, seg: TcpSegment, now: number): void {
  const ack = seg.ack;
  const window = seg.window * 2 ** tcb.sndScale;
  const flight = seqDiff(tcb.sndMax, tcb.sndUna);
  tcb.probes = 0;
  if (seqGt(ack, tcb.sndUna)) {
    const acked = seqDiff(ack, tcb.sndUna);
    if (tcb.timing && seqGe(ack, tcb.timing.seq)) {
      tcb.rtt.sample(now - tcb.timing.at);
      tcb.timing = undefined;
    }
    const dataAcked = seqDiff(seqLt(ack, tcb.dataEnd) ? ack : tcb.dataEnd, tcb.bufferSeq);
    if (dataAcked > 0) {
      tcb.sendBuffer.discard(dataAcked);
      tcb.bufferSeq = seqAdd(tcb.bufferSeq, dataAcked);
    }
    tcb.sndUna = ack;
    if (seqLt(tcb.sndNxt, ack)) tcb.sndNxt = ack;
    tcb.scoreboard.acknowledge(ack);
    takeSack(tcb, seg);
    tcb.host.counters.spuriousRetransmissions += tcb.sent.delivered(
      ack,
      tcb.scoreboard.ranges,
      now,
    );
    tcb.retries = 0;
    const kind = tcb.congestion.onNewAck(ack, acked, flight);
    if (kind !== "partial") tcb.dupAcks = 0;
    tcb.rtoAt = tcb.sndUna === tcb.sndMax ? Infinity : now + tcb.rtt.rto;
    tcb.armProbe(now);
    // Without SACK, a partial ACK shows the next segment lost too (RFC 6582 step 5).
    if (kind === "partial" && !tcb.sackPermitted) tcb.sent.markFirstLost();
    tcb.recoverLosses(now);
    updateWindow(tcb, seg, window);
    if (tcb.finQueued && !tcb.finAcked && seqGt(ack, tcb.dataEnd)) tcb.onFinAcked(now);
    if (tcb.state !== "CLOSED") {
      tcb.listener?.onWritable();
      tcb.host.requestFlush(tcb);
    }
    return;
  }
  // A duplicate ACK: RFC 5681's definition, or (RFC 6675) one that SACKs new data.
  const sackedNew = ack === tcb.sndUna && takeSack(tcb, seg);
  const duplicate = ack === tcb.sndUna && flight > 0 && (sackedNew || (
    seg.payload.length === 0 && !(seg.flags & (TCP_SYN | TCP_FIN)) && window === tcb.sndWnd
  ));
  if (duplicate) {
    tcb.dupAcks++;
    if (sackedNew) {
      tcb.host.counters.spuriousRetransmissions += tcb.sent.delivered(
        ack,
        tcb.scoreboard.ranges,
        now,
      );
    }
    // Without SACK, the third duplicate ACK shows the first segment lost (RFC 5681).
    if (tcb.dupAcks === 3 && !tcb.sackPermitted) tcb.sent.markFirstLost();
    tcb.recoverLosses(now);
    tcb.host.requestFlush(tcb); // limited transmit or a smaller pipe may send more
  }
  updateWindow(tcb, seg, window);
}

/**
 * Feeds `seg`'s SACK blocks to the scoreboard; true if they covered new data. A first block
 * below the cumulative ACK, or inside the second, is a D-SACK (RFC 2883): the peer got a
 * segment twice, so a resend was needless.
 */
function takeSack(tcb: Tcb, seg: TcpSegment): boolean {
  const blocks = seg.options.sack;
  if (!blocks || !tcb.sackPermitted) return false;
  const [first, second] = blocks;
  if (
    seqLe(first[1], seg.ack) ||
    (second && seqGe(first[0], second[0]) && seqLe(first[1], second[1]))
  ) {
    tcb.sent.spuriousResend();
    tcb.host.counters.spuriousRetransmissions++;
  }
  return tcb.scoreboard.update(blocks, tcb.sndUna, tcb.sndMax);
}

/** Takes the peer's window from `seg` unless an older segment's (RFC 9293 SND.WL1/WL2). */
function updateWindow(tcb: Tcb, seg: TcpSegment, window: number): void {
  if (!(seqLt(tcb.sndWl1, seg.seq) || (tcb.sndWl1 === seg.seq && seqLe(tcb.sndWl2, seg.ack)))) {
    return;
  }
  if (window !== tcb.sndWnd) tcb.host.requestFlush(tcb);
  tcb.sndWnd = window;
  tcb.sndWl1 = seg.seq;
  tcb.sndWl2 = seg.ack;
  if (window > tcb.maxSndWnd) tcb.maxSndWnd = window;
  if (window > 0) {
    tcb.persistAt = Infinity;
    tcb.persistBackoff = 0;
  }
}

/**
 * Accepts the in-window part of `payload` (at `seq`): in order it is queued for the reader
 * together with any reassembled data it connects to; ahead of a gap it is buffered. Returns
 * true when the tail was cut at the window edge (a FIN after it is then not accepted).
 */
function receiveData(tcb: Tcb, seq: number, payload: Uint8Array): boolean {
  const window = seqDiff(tcb.rcvAdv, tcb.rcvNxt);
  let start = seqDiff(seq, tcb.rcvNxt);
  let data = payload;
  if (start < 0) {
    data = data.subarray(-start);
    start = 0;
  }
  const cut = data.length > window - start;
  if (cut) data = data.subarray(0, Math.max(0, window - start));
  if (data.length === 0) {
    if (cut) tcb.sendAck(); // nothing fits the window: the peer learns it is (still) closed
    return cut;
  }
  if (start > 0) {
    tcb.host.counters.outOfOrder++;
    if (tcb.reassembly.insert(seqAdd(tcb.rcvNxt, start), data, tcb.rcvNxt) === "full") {
      tcb.host.counters.outOfOrderDropped++;
    }
    tcb.sendAck(); // a duplicate ACK (with SACK) at once, for the peer's fast retransmit
    return cut;
  }
  tcb.queue.push(data);
  tcb.rcvNxt = seqAdd(tcb.rcvNxt, data.length);
  let filled = false;
  for (let next = tcb.reassembly.next(tcb.rcvNxt); next; next = tcb.reassembly.next(tcb.rcvNxt)) {
    tcb.queue.push(next);
    tcb.rcvNxt = seqAdd(tcb.rcvNxt, next.length);
    filled = true;
  }
  tcb.listener?.onReadable();
  if (filled || cut) tcb.sendAck();
  else tcb.ackSoon();
  return cut;
}

/** Once the peer's FIN is next in sequence: consume it, ACK it, and move state. */
function receiveFin(tcb: Tcb, now: number): void {
  if (tcb.finReceived || tcb.finSeq === undefined || tcb.rcvNxt !== tcb.finSeq) return;
  tcb.finReceived = true;
  tcb.rcvNxt = seqAdd(tcb.rcvNxt, 1);
  tcb.sendAck();
  if (tcb.state === "ESTABLISHED") tcb.setState("CLOSE_WAIT");
  else if (tcb.state === "FIN_WAIT_1") tcb.setState("CLOSING");
  else if (tcb.state === "FIN_WAIT_2") tcb.enterTimeWait(now);
  tcb.listener?.onReadable();
}
