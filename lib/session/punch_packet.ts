/**
 * Punch packets: the small non-QUIC datagrams both ends of a session send from
 * their one UDP socket to each other's candidates, to open NAT mappings
 * (simultaneous open) and to measure each candidate path. A ping is answered
 * by a pong of the same size carrying the ping's counter and timestamp.
 *
 * Layout (44 bytes; the first byte has QUIC's fixed bit 0x40 clear, and is
 * neither STUN's 0x00 nor 0x01):
 *
 *   0      kind: 0x30 ping, 0x31 pong
 *   1      version (1)
 *   2..10  session ID (the relay's 8 bytes)
 *   10..12 round (uint16)
 *   12..16 counter (uint32; every packet a sender sends has a new one)
 *   16..20 timestamp: the sender's punch clock, in 10 µs ticks (uint32, wraps)
 *   20..24 echoed counter (pong: the ping's; ping: 0)
 *   24..28 echoed timestamp (pong: the ping's; ping: 0)
 *   28..44 HMAC-SHA256 under the sender's punch key over bytes 0..28, first 16 bytes
 *
 * Each end's punch key is 32 random bytes it sends only inside the end-to-end
 * session, so neither the relay nor a stranger can forge, and the replay and
 * time windows make a captured punch useless.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { SESSION_ID_BYTES } from "../relay/session_id.ts";
import { ReplayWindow } from "./replay_window.ts";

/** First byte of a ping. */
export const PUNCH_PING = 0x30;
/** First byte of a pong. */
export const PUNCH_PONG = 0x31;
/** Size of every punch packet. */
export const PUNCH_PACKET_BYTES = 44;
/** Length of a punch key. */
export const PUNCH_KEY_BYTES = 32;
/** A punch whose timestamp is further than this from the expected one is refused. */
export const PUNCH_TIME_WINDOW_MS = 10_000;
/** Punch clock ticks per millisecond (10 µs ticks: round trips on a LAN are well under 1 ms). */
export const PUNCH_TICKS_PER_MS = 100;

const VERSION = 1;
const MAC_OFFSET = 28;
const MAC_BYTES = 16;

/** The fields of a punch packet. */
export interface PunchFields {
  kind: "ping" | "pong";
  session: Uint8Array;
  round: number;
  counter: number;
  timestamp: number;
  /** For a pong: the ping's counter and timestamp. */
  echoCounter: number;
  echoTimestamp: number;
}

/** Why a punch was refused. */
export type PunchRefusal = "malformed" | "bad-mac" | "stale" | "replayed";

function mac(key: Uint8Array, packet: Uint8Array): Uint8Array {
  const digest = createHmac("sha256", key).update(packet.subarray(0, MAC_OFFSET)).digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, MAC_BYTES);
}

/** The session ID a punch packet names, or null if it is not a punch packet of this version. */
export function punchSessionId(packet: Uint8Array): Uint8Array | null {
  if (packet.length !== PUNCH_PACKET_BYTES) return null;
  if ((packet[0] !== PUNCH_PING && packet[0] !== PUNCH_PONG) || packet[1] !== VERSION) return null;
  return packet.subarray(2, 2 + SESSION_ID_BYTES);
}

/** The signed punches one end sends, under its own key and clock. */
export class PunchSigner {
  /** This end's punch key (sent to the other end inside the session). */
  readonly key: Uint8Array;
  readonly #session: Uint8Array;
  readonly #epoch: number;
  #counter = 0;

  /** A signer with a fresh random key; `now` is the clock punch timestamps count from. */
  constructor(session: Uint8Array, now: number) {
    this.key = crypto.getRandomValues(new Uint8Array(PUNCH_KEY_BYTES));
    this.#session = session.slice();
    this.#epoch = now;
  }

  /** This end's punch clock at `now` (10 µs ticks, wraps at 2^32), as sent in signalling. */
  clock(now: number): number {
    return Math.floor((now - this.#epoch) * PUNCH_TICKS_PER_MS) >>> 0;
  }

  /**
   * The round-trip time (ms) of a ping whose pong echoes `echoTimestamp`, or
   * undefined if the echo is not from the last 10 s.
   */
  roundTripMs(echoTimestamp: number, now: number): number | undefined {
    const ticks = (this.clock(now) - echoTimestamp) | 0;
    const ms = ticks / PUNCH_TICKS_PER_MS;
    return ms >= 0 && ms <= PUNCH_TIME_WINDOW_MS ? ms : undefined;
  }

  /** A ping for `round`. */
  ping(round: number, now: number): Uint8Array {
    return this.#sign("ping", round, now, 0, 0);
  }

  /** The pong answering `ping` (already verified). */
  pong(ping: PunchFields, now: number): Uint8Array {
    return this.#sign("pong", ping.round, now, ping.counter, ping.timestamp);
  }

  #sign(
    kind: "ping" | "pong",
    round: number,
    now: number,
    echoCounter: number,
    echoTimestamp: number,
  ): Uint8Array {
    const packet = new Uint8Array(PUNCH_PACKET_BYTES);
    const view = new DataView(packet.buffer);
    packet[0] = kind === "ping" ? PUNCH_PING : PUNCH_PONG;
    packet[1] = VERSION;
    packet.set(this.#session, 2);
    view.setUint16(10, round & 0xffff);
    view.setUint32(12, this.#counter++ >>> 0);
    view.setUint32(16, this.clock(now));
    view.setUint32(20, echoCounter >>> 0);
    view.setUint32(24, echoTimestamp >>> 0);
    packet.set(mac(this.key, packet), MAC_OFFSET);
    return packet;
  }
}

/** Checks the other end's punches: MAC under its key, time window, replay window. */
export class PunchVerifier {
  readonly #key: Uint8Array;
  readonly #session: Uint8Array;
  /** Our clock (ticks) minus the peer's punch clock, measured when its key arrived. */
  readonly #offset: number;
  readonly #replay = new ReplayWindow();

  /**
   * `key` and `peerClock` come from the peer's signalling message, which
   * arrived at `now`.
   */
  constructor(session: Uint8Array, key: Uint8Array, peerClock: number, now: number) {
    if (key.length !== PUNCH_KEY_BYTES) throw new RangeError("a punch key has 32 bytes");
    this.#key = key.slice();
    this.#session = session.slice();
    this.#offset = now * PUNCH_TICKS_PER_MS - peerClock;
  }

  /** The packet's fields if it is a fresh, authentic punch from the peer; else why not. */
  verify(packet: Uint8Array, now: number): PunchFields | PunchRefusal {
    const session = punchSessionId(packet);
    if (session === null || !session.every((b, i) => b === this.#session[i])) return "malformed";
    if (!timingSafeEqual(mac(this.#key, packet), packet.subarray(MAC_OFFSET))) return "bad-mac";
    const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
    const timestamp = view.getUint32(16);
    const expected = Math.floor(now * PUNCH_TICKS_PER_MS - this.#offset) >>> 0;
    // Difference on the wrapping 32-bit clock.
    const skew = Math.abs((expected - timestamp) | 0) / PUNCH_TICKS_PER_MS;
    if (skew > PUNCH_TIME_WINDOW_MS) return "stale";
    const counter = view.getUint32(12);
    if (!this.#replay.accept(counter)) return "replayed";
    return {
      kind: packet[0] === PUNCH_PING ? "ping" : "pong",
      session,
      round: view.getUint16(10),
      counter,
      timestamp,
      echoCounter: view.getUint32(20),
      echoTimestamp: view.getUint32(24),
    };
  }
}
