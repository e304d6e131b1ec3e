/**
 * An in-process TCP peer for lib/tcp unit tests: hand-built segments go into a `TcpStack`
 * under fake timers, and every packet the stack sends is parsed back for exact assertions.
 */
import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import {
  formatIpAddress,
  isPacketError,
  parseIp,
  parseIpAddress,
  parseTcp,
  TCP_ACK,
  TCP_SYN,
  tcpHeadersLength,
  type TcpOptions,
  writeTcpPacket,
} from "../../lib/packet/mod.ts";
import {
  type TcpConnection,
  type TcpFlow,
  TcpStack,
  type TcpStackOptions,
  type TcpTuning,
} from "../../lib/tcp/mod.ts";

/** The fake clock's methods the tests use. */
export interface Clock {
  now: number;
  tickAsync(ms: number): Promise<number>;
  uninstall(): void;
}

/** A segment the stack sent, parsed. */
export interface Sent {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  options: TcpOptions;
  payload: Uint8Array;
}

/** A segment the peer sends; addresses and ports default to the peer's. */
export interface PeerSegment {
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  options?: TcpOptions;
  payload?: Uint8Array;
  srcPort?: number;
}

/** The peer: one address and port talking to one service address and port. */
export class Peer {
  readonly stack: TcpStack;
  readonly clock: Clock;
  readonly peerAddress: Uint8Array;
  readonly serviceAddress: Uint8Array;
  readonly peerPort = 40000;
  readonly servicePort = 80;
  /** Every segment the stack sent that `take()` has not returned yet. */
  readonly sent: Sent[] = [];
  /** Connections handed to onConnection, with their flows. */
  readonly accepted: Array<{ connection: TcpConnection; flow: TcpFlow }> = [];

  constructor(
    clock: Clock,
    family: 4 | 6,
    tuning: TcpTuning,
    accept?: TcpStackOptions["accept"],
  ) {
    this.clock = clock;
    this.peerAddress = parseIpAddress(family === 4 ? "10.0.0.1" : "fd00::1");
    this.serviceAddress = parseIpAddress(family === 4 ? "10.77.0.2" : "fd77::2");
    this.stack = new TcpStack({
      ...tuning,
      accept,
      send: (packet) => this.sent.push(parseSent(packet)),
      onConnection: (connection, flow) => this.accepted.push({ connection, flow }),
    });
  }

  /** Feeds one segment from the peer to the stack. */
  send(segment: PeerSegment): void {
    this.stack.receive(this.packet(segment));
  }

  /** The IP packet for `segment`, checksums computed. */
  packet(segment: PeerSegment): Uint8Array {
    const payload = segment.payload ?? new Uint8Array(0);
    const out = new Uint8Array(
      tcpHeadersLength(this.peerAddress, segment.options) + payload.length,
    );
    writeTcpPacket(out, {
      src: this.peerAddress,
      dst: this.serviceAddress,
      srcPort: segment.srcPort ?? this.peerPort,
      dstPort: this.servicePort,
      seq: segment.seq,
      ack: segment.ack ?? 0,
      flags: segment.flags,
      window: segment.window ?? 65535,
      options: segment.options,
      payload,
    });
    return out;
  }

  /** Lets deferred work (microtasks, due timers) run, advancing the fake clock by `ms`. */
  async run(ms = 0): Promise<void> {
    await this.clock.tickAsync(ms);
  }

  /** Removes and returns what the stack has sent so far. */
  take(): Sent[] {
    return this.sent.splice(0);
  }

  /** Removes and returns exactly one sent segment; fails if there are none or several. */
  takeOne(): Sent {
    const sent = this.take();
    assert.equal(sent.length, 1, `expected one segment, got ${describe(sent)}`);
    return sent[0];
  }

  /**
   * SYN (seq `isn`, the given options) → SYN-ACK → ACK. Returns the stack's ISN and the
   * accepted connection.
   */
  async handshake(
    isn: number,
    options: TcpOptions = { mss: 1460, windowScale: 7, sackPermitted: true },
    window = 64240,
  ): Promise<{ iss: number; connection: TcpConnection }> {
    this.send({ seq: isn, flags: TCP_SYN, window, options });
    const synAck = this.takeOne();
    assert.equal(synAck.flags, TCP_SYN | TCP_ACK);
    this.send({ seq: isn + 1, ack: synAck.seq + 1, flags: TCP_ACK, window: 1024 });
    await this.run();
    assert.equal(this.accepted.length > 0, true, "the handshake completed");
    return { iss: synAck.seq, connection: this.accepted[this.accepted.length - 1].connection };
  }
}

/** Runs `body` with fake timers and a peer; uninstalls and closes the stack afterwards. */
export async function withPeer(
  tuning: TcpTuning,
  body: (peer: Peer) => Promise<void>,
  options: { family?: 4 | 6; accept?: TcpStackOptions["accept"] } = {},
): Promise<void> {
  const clock = FakeTimers.withGlobal(globalThis).install({
    now: 0,
    toFake: ["setTimeout", "clearTimeout", "performance"],
  }) as Clock;
  const peer = new Peer(clock, options.family ?? 4, tuning, options.accept);
  try {
    await body(peer);
  } finally {
    peer.stack.close();
    clock.uninstall();
  }
}

/** Parses a packet the stack sent; fails the test if it is not a valid TCP/IP packet. */
export function parseSent(packet: Uint8Array): Sent {
  const ip = parseIp(packet);
  assert.ok(!isPacketError(ip), `the stack sent a bad IP packet: ${ip}`);
  const tcp = parseTcp(ip);
  assert.ok(!isPacketError(tcp), `the stack sent a bad TCP segment: ${tcp}`);
  return {
    src: formatIpAddress(ip.src),
    dst: formatIpAddress(ip.dst),
    srcPort: tcp.srcPort,
    dstPort: tcp.dstPort,
    seq: tcp.seq,
    ack: tcp.ack,
    flags: tcp.flags,
    window: tcp.window,
    options: { ...tcp.options },
    payload: tcp.payload.slice(),
  };
}

/** A short text form of sent segments for assertion messages. */
export function describe(sent: Sent[]): string {
  return JSON.stringify(
    sent.map((s) => ({ seq: s.seq, ack: s.ack, flags: s.flags, len: s.payload.length })),
  );
}

/** Reads from `reader` until `length` bytes arrived (or the stream ended) and joins them. */
export async function readBytes(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  length: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let at = 0;
  while (at < length) {
    const { value, done } = await reader.read();
    if (done) break;
    out.set(value, at);
    at += value.length;
  }
  return out.subarray(0, at);
}
