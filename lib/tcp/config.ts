/** The TCP stack's tunables: defaults, limits, and validation with messages naming the value. */
import { MAX_WINDOW_SCALE } from "../packet/mod.ts";

/** Tunables of `TcpStack`; every one is optional. */
export interface TcpTuning {
  /** MTU of the path to the peers: MSS is this minus 40 (IPv4) or 60 (IPv6). Default 1280. */
  mtu?: number;
  /** Receive buffer per connection in bytes; the advertised window never exceeds what is
   * free of it. Default 256 KiB. */
  receiveWindow?: number;
  /** Send buffer per connection in bytes: writes wait while it is full. Default 256 KiB. */
  sendBuffer?: number;
  /** Most half-open connections at once; further SYNs are dropped. Default 128. */
  synBacklog?: number;
  /** Most connections at once (every state); further SYNs are dropped. Default 4096. */
  maxConnections?: number;
  /** Most out-of-order segments buffered per connection (the window bounds their bytes); more
   * are dropped. Default 1024: a whole 1 MiB window of full segments behind one loss. */
  maxOutOfOrderSegments?: number;
  /** Retransmission timeout before any RTT sample (RFC 6298: 1 s). */
  initialRtoMs?: number;
  /** Lower bound of the retransmission timeout. Default 200 ms. */
  minRtoMs?: number;
  /** Upper bound of the retransmission timeout and of backoff. Default 60 s. */
  maxRtoMs?: number;
  /** Consecutive unanswered retransmissions (or zero-window probes) before the connection is
   * reset. Default 12. */
  maxRetransmissions?: number;
  /** SYN-ACK retransmissions before a half-open connection is dropped. Default 5. */
  maxSynAckRetransmissions?: number;
  /** How long TIME_WAIT lasts. Default 5 s (short: this is a tunnel endpoint, not a host). */
  timeWaitMs?: number;
  /** How long FIN_WAIT_2 may go without a segment from the peer before a reset. Default 60 s. */
  finWait2TimeoutMs?: number;
}

/** Validated tunables with defaults applied. */
export type TcpConfig = Required<TcpTuning>;

/** Largest window a scaled 16-bit field can express. */
const MAX_WINDOW = 0xffff << MAX_WINDOW_SCALE;

const LIMITS: { [K in keyof TcpConfig]: [number, number, number] } = {
  mtu: [1280, 576, 65535],
  receiveWindow: [256 * 1024, 1024, MAX_WINDOW],
  sendBuffer: [256 * 1024, 1024, 1 << 30],
  synBacklog: [128, 1, 1 << 20],
  maxConnections: [4096, 1, 1 << 24],
  maxOutOfOrderSegments: [1024, 0, 1 << 16],
  initialRtoMs: [1000, 1, 600_000],
  minRtoMs: [200, 1, 600_000],
  maxRtoMs: [60_000, 1, 600_000],
  maxRetransmissions: [12, 1, 100],
  maxSynAckRetransmissions: [5, 0, 100],
  timeWaitMs: [5000, 0, 600_000],
  finWait2TimeoutMs: [60_000, 1, 3_600_000],
};

/** Applies defaults and checks every value; throws a RangeError naming the first bad one. */
export function resolveTcpConfig(tuning: TcpTuning): TcpConfig {
  const config = {} as TcpConfig;
  for (const key of Object.keys(LIMITS) as (keyof TcpConfig)[]) {
    const [fallback, min, max] = LIMITS[key];
    const value = tuning[key] ?? fallback;
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(`TCP option ${key} must be an integer in ${min}-${max}, got ${value}`);
    }
    config[key] = value;
  }
  if (config.minRtoMs > config.maxRtoMs) {
    throw new RangeError(
      `TCP option minRtoMs (${config.minRtoMs}) exceeds maxRtoMs (${config.maxRtoMs})`,
    );
  }
  return config;
}

/** The MSS for packets of this IP version (address length 4 or 16) under `mtu`. */
export function mssFor(mtu: number, addressLength: number): number {
  return mtu - (addressLength === 4 ? 40 : 60);
}

/** The smallest window-scale shift that lets `window` be advertised (RFC 7323 §2.3). */
export function windowScaleFor(window: number): number {
  let shift = 0;
  while (shift < MAX_WINDOW_SCALE && (window >> shift) > 0xffff) shift++;
  return shift;
}
