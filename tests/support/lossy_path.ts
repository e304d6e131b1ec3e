/**
 * A simulated path for lib/tcp's sender under loss, in process and on fake time: the stack's
 * segments cross a bottleneck (a rate and a drop-tail queue), a one-way delay and seeded
 * random loss to a SACK-capable receiver that ACKs every segment (SACK blocks as Linux sends
 * them: the one holding the newest segment first); its ACKs come back over the same delay
 * and loss. Deterministic for a seed, so counters can be compared exactly between versions.
 */
import FakeTimers from "@sinonjs/fake-timers";
import {
  parseIpAddress,
  TCP_ACK,
  TCP_SYN,
  tcpHeadersLength,
  writeTcpPacket,
} from "../../lib/packet/mod.ts";
import { type TcpConnection, type TcpCounters, TcpStack } from "../../lib/tcp/mod.ts";
import { type Clock, parseSent, type Sent } from "./tcp_peer.ts";

/** The path's shape. */
export interface LossyPathOptions {
  /** Random loss each way, as a share (0.05 = 5 %). */
  loss: number;
  /** One-way propagation delay, ms. */
  delayMs: number;
  /** Bottleneck rate towards the receiver, Mbit/s. */
  rateMbps: number;
  /** Drop-tail queue at the bottleneck, packets. */
  queuePackets: number;
  /** Seed of the loss pattern. */
  seed: number;
}

/** What a transfer over the path did. */
export interface PathTransfer {
  /** Bytes the receiver got in order. */
  delivered: number;
  /** Whether they equal what was written, byte for byte. */
  intact: boolean;
  /** Simulated time from the first data byte to the last, ms. */
  simulatedMs: number;
  /** The stack's counters at the end. */
  counters: TcpCounters;
  /** Packets the random loss dropped, each way, and the queue dropped. */
  lostData: number;
  lostAcks: number;
  queueDrops: number;
}

/** Mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MSS = 1460;
const PEER = parseIpAddress("10.0.0.1"), SERVICE = parseIpAddress("10.77.0.2");
const PEER_PORT = 40000, SERVICE_PORT = 80;
const ISN = 1000;
/** The receiver's window: 65535 << 7, about 8 MiB, so the sender's own limits rule. */
const WINDOW_SCALE = 7;

/** The receiver: in-order bytes, out-of-order ranges [start, end) relative to ISN + 1. */
class SackReceiver {
  next = 0;
  ranges: Array<[number, number]> = [];
  latest: [number, number] | undefined;
  readonly data: Uint8Array;

  constructor(length: number) {
    this.data = new Uint8Array(length);
  }

  /** Takes a data segment at relative offset `at`; returns the SACK blocks to send. */
  take(at: number, payload: Uint8Array): Array<[number, number]> {
    const end = at + payload.length;
    if (end > this.next) {
      this.data.set(payload.subarray(Math.max(0, this.next - at)), Math.max(at, this.next));
    }
    if (at <= this.next) {
      this.next = Math.max(this.next, end);
      while (this.ranges.length > 0 && this.ranges[0][0] <= this.next) {
        this.next = Math.max(this.next, this.ranges.shift()![1]);
      }
    } else {
      this.#add(at, end);
    }
    return this.#blocks();
  }

  #add(start: number, end: number): void {
    const merged: Array<[number, number]> = [];
    let s = start, e = end;
    for (const [a, b] of this.ranges) {
      if (b < s || a > e) merged.push([a, b]);
      else {
        s = Math.min(s, a);
        e = Math.max(e, b);
      }
    }
    merged.push([s, e]);
    merged.sort((x, y) => x[0] - y[0]);
    this.ranges = merged;
    this.latest = [s, e];
  }

  #blocks(): Array<[number, number]> {
    const latest = this.ranges.find(([a, b]) =>
      this.latest && a <= this.latest[0] && b >= this.latest[1]
    );
    const rest = this.ranges.filter((r) => r !== latest);
    return (latest ? [latest, ...rest] : rest).slice(0, 3);
  }
}

/**
 * Writes `length` pseudo-random bytes from a `TcpStack` connection over the path and runs
 * fake time until the receiver has them all (or `limitMs` of simulated time passed).
 */
export async function transferOverLossyPath(
  length: number,
  path: LossyPathOptions,
  limitMs = 600_000,
): Promise<PathTransfer> {
  const clock = FakeTimers.withGlobal(globalThis).install({
    now: 0,
    toFake: ["setTimeout", "clearTimeout", "performance"],
  }) as Clock;
  const random = prng(path.seed);
  const receiver = new SackReceiver(length);
  const accepted: TcpConnection[] = [];
  let lostData = 0, lostAcks = 0, queueDrops = 0;
  let linkFreeAt = 0, queued = 0;
  let synAck: Sent | undefined;
  const perPacketMs = (bytes: number) => (bytes * 8) / (path.rateMbps * 1000);

  const toStack = (seq: number, ack: number, flags: number, sack?: Array<[number, number]>) => {
    const options = flags & TCP_SYN
      ? { mss: MSS, windowScale: WINDOW_SCALE, sackPermitted: true }
      : sack && sack.length > 0
      ? {
        sack: sack.map(([a, b]) => [(iss + 1 + a) >>> 0, (iss + 1 + b) >>> 0] as [number, number]),
      }
      : undefined;
    const out = new Uint8Array(tcpHeadersLength(PEER, options));
    writeTcpPacket(out, {
      src: PEER,
      dst: SERVICE,
      srcPort: PEER_PORT,
      dstPort: SERVICE_PORT,
      seq,
      ack,
      flags,
      window: 0xffff,
      options,
      payload: new Uint8Array(0),
    });
    return out;
  };
  let iss = 0;
  const stack = new TcpStack({
    mtu: MSS + 40,
    send: (packet) => {
      const sent = parseSent(packet);
      if (sent.flags & TCP_SYN) {
        synAck = sent;
        return;
      }
      if (sent.payload.length === 0) return; // pure ACKs: the receiver needs none
      if (queued >= path.queuePackets) {
        queueDrops++;
        return;
      }
      const now = performance.now();
      linkFreeAt = Math.max(linkFreeAt, now) + perPacketMs(packet.length);
      queued++;
      const departs = linkFreeAt - now;
      setTimeout(() => queued--, departs);
      if (random() < path.loss) {
        lostData++;
        return;
      }
      setTimeout(() => {
        const at = (sent.seq - (iss + 1)) >>> 0;
        const sack = receiver.take(at, sent.payload);
        if (random() < path.loss) {
          lostAcks++;
          return;
        }
        const ack = toStack(ISN + 1, (iss + 1 + receiver.next) >>> 0, TCP_ACK, sack);
        setTimeout(() => stack.receive(ack), path.delayMs);
      }, departs + path.delayMs);
    },
    onConnection: (connection) => accepted.push(connection),
  });
  try {
    stack.receive(toStack(ISN, 0, TCP_SYN));
    iss = synAck!.seq;
    stack.receive(toStack(ISN + 1, (iss + 1) >>> 0, TCP_ACK));
    await clock.tickAsync(0);
    const connection = accepted[0];
    const data = new Uint8Array(length);
    const fill = prng(path.seed ^ 0x5eed);
    for (let i = 0; i < length; i++) data[i] = fill() * 256;
    const writer = connection.writable.getWriter();
    const started = performance.now();
    const written = writer.write(data);
    while (receiver.next < length && performance.now() - started < limitMs) {
      await clock.tickAsync(10);
    }
    await written.catch(() => {});
    const simulatedMs = performance.now() - started;
    let intact = receiver.next === length;
    for (let i = 0; intact && i < length; i++) intact = receiver.data[i] === data[i];
    return {
      delivered: receiver.next,
      intact,
      simulatedMs,
      counters: { ...stack.counters },
      lostData,
      lostAcks,
      queueDrops,
    };
  } finally {
    stack.close();
    clock.uninstall();
  }
}
