/**
 * The direct-path policy of one session, as pure code: which addresses to
 * punch and probe and when, which validated path to use, when to keep a
 * direct path alive and when to fall back to the relay. It is driven by
 * events and a clock (`now`, in ms) and answers with actions; it does no I/O,
 * so it is tested under fake time without sockets (as Tailscale keeps
 * netcheck's plan apart from its run, and iroh keeps its path selector pure).
 *
 * The agent (the session's QUIC client) decides: it starts rounds, probes
 * paths (QUIC path validation), migrates the session and falls back. The
 * connector (the server, which quiche lets neither probe nor migrate) only
 * punches when the agent signals a round, so that its NAT opens towards the
 * agent's candidates at the same time; its QUIC session follows the agent.
 */

/** The path a session's packets take: the relay, or a direct peer address (`ip:port`). */
export type PathChoice = "relay" | string;

/** What the policy asks its driver to do. */
export type PathAction =
  /** Tell the connector (in the session) to punch round `round` now. */
  | { type: "signal-round"; round: number }
  /** Send a ping punch to each target. */
  | { type: "punch"; round: number; targets: string[] }
  /** Start QUIC path validation towards `target`. */
  | { type: "probe"; target: string }
  /** Move the session onto `to`. */
  | { type: "migrate"; to: PathChoice; reason: string }
  /** Send an ack-eliciting packet on the direct path `target`. */
  | { type: "keepalive"; target: string }
  /** Retire the destination connection ID of the failed path `target`. */
  | { type: "retire"; target: string }
  /**
   * Connector: the direct path went quiet in a busy session; our NAT may have
   * a new address. Send something to the relay now, so it sees (and tells
   * both ends) where we are, and the agent's relay path reaches us again.
   */
  | { type: "nudge-relay" };

/** Timing and bounds of the policy; every time is in ms. */
export interface PathPolicyOptions {
  role: "agent" | "connector";
  /** Offsets of a round's punch ticks from its start. */
  schedule?: readonly number[];
  /** Length of a round. */
  roundMs?: number;
  /** Waits before the next round while on the relay, one per failed round; the last repeats. */
  retryMs?: readonly number[];
  /** Fall back when nothing arrived on the direct path for this long... */
  silenceMs?: number;
  /** ...and a keep-alive has gone unanswered for this long. */
  unansweredMs?: number;
  /** Keep-alive on a quiet direct path while the session carries traffic... */
  keepaliveActiveMs?: number;
  /** ...and while it does not (NAT mappings live about 30 s). */
  keepaliveIdleMs?: number;
  /** The session counts as carrying traffic for this long after its last packet. */
  activeWindowMs?: number;
  /** Most peer-reflexive targets (sources of verified punches) per session. */
  maxReflexive?: number;
  /** An event starts a new round only if the current one is older than this. */
  minRoundGapMs?: number;
}

/** Defaults: the schedule iroh's NAT traversal uses, a 5 s round, 5/15/30/60 s retries. */
export const PATH_POLICY_DEFAULTS = {
  schedule: [0, 33, 66, 133, 266, 533, 1066, 2133, 4133],
  roundMs: 5_000,
  retryMs: [5_000, 15_000, 30_000, 60_000],
  silenceMs: 1_500,
  unansweredMs: 1_000,
  keepaliveActiveMs: 500,
  keepaliveIdleMs: 15_000,
  activeWindowMs: 45_000,
  maxReflexive: 4,
  minRoundGapMs: 1_000,
} as const;

/** Traffic counters the driver samples while the session is direct. */
export interface TrafficSample {
  /** Packets received on the current direct path so far. */
  packetsReceived: number;
  /** DATAGRAMs sent plus received by the session so far (its payload traffic). */
  datagrams: number;
}

/** What the policy knows, for status output. */
export interface PathPolicyState {
  current: PathChoice;
  round: number;
  roundActive: boolean;
  targets: string[];
  validated: string[];
  rttMs: Record<string, number>;
  /** When the next round starts (ms on the policy's clock), or null if none is planned. */
  nextRoundAt: number | null;
  /** Why punching is skipped, if it is. */
  hopeless: string | null;
}

/** The policy of one session end. */
export class PathPolicy {
  readonly #o: Required<PathPolicyOptions>;
  #current: PathChoice = "relay";
  #round = 0;
  #roundStart = -Infinity;
  #roundActive = false;
  #tick = 0;
  #remote: string[] = [];
  #reflexive: string[] = [];
  /** Paths quiche validated and that have not failed since. */
  readonly #validated = new Set<string>();
  /** Paths that went silent while in use: usable again only after a fresh pong. */
  readonly #suspect = new Set<string>();
  /** Targets heard from (punch or validation) in the current round. */
  readonly #heard = new Set<string>();
  readonly #rtt = new Map<string, number>();
  #nextRoundAt = Infinity;
  #retry = 0;
  #hopeless: string | null = null;
  // Liveness of the current direct path (agent).
  #lastReceived: number | undefined;
  #lastReceivedAt = 0;
  #lastDatagrams: number | undefined;
  #lastActivityAt = 0;
  #lastKeepaliveAt = -Infinity;
  #firstUnansweredAt: number | null = null;
  /** Connector: the relay was nudged for the current quiet spell. */
  #nudged = false;

  constructor(options: PathPolicyOptions) {
    this.#o = { ...PATH_POLICY_DEFAULTS, ...options };
  }

  /** The path the session uses, as far as the policy decided. */
  get current(): PathChoice {
    return this.#current;
  }

  /** Every address this end punches (and the agent probes) in a round. */
  get targets(): string[] {
    return [...this.#remote, ...this.#reflexive.filter((r) => !this.#remote.includes(r))];
  }

  /** A snapshot for status output. */
  state(): PathPolicyState {
    return {
      current: this.#current,
      round: this.#round,
      roundActive: this.#roundActive,
      targets: this.targets,
      validated: [...this.#validated],
      rttMs: Object.fromEntries(this.#rtt),
      nextRoundAt: Number.isFinite(this.#nextRoundAt) ? this.#nextRoundAt : null,
      hopeless: this.#hopeless,
    };
  }

  /** When `tick` next has work (ms), or Infinity. */
  nextWakeup(): number {
    if (this.#roundActive) {
      const next = this.#tick < this.#o.schedule.length
        ? this.#roundStart + this.#o.schedule[this.#tick]
        : Infinity;
      return Math.min(next, this.#roundStart + this.#o.roundMs);
    }
    return this.#o.role === "agent" ? this.#nextRoundAt : Infinity;
  }

  /** The other end's candidates arrived or changed. */
  setRemoteCandidates(addresses: readonly string[], now: number): PathAction[] {
    const changed = addresses.length !== this.#remote.length ||
      addresses.some((a, i) => a !== this.#remote[i]);
    this.#remote = [...addresses];
    return changed ? this.#trigger(now) : [];
  }

  /** This end's own candidates changed (network change, new observed address). */
  localChanged(now: number): PathAction[] {
    this.#reflexive = [];
    return this.#trigger(now);
  }

  /** The relay says the other end's observed address changed. */
  peerMoved(now: number): PathAction[] {
    this.#reflexive = [];
    return this.#trigger(now);
  }

  /** NAT behaviour makes a direct path impossible (`reason`), or no longer (`null`). */
  setHopeless(reason: string | null, now: number): PathAction[] {
    const was = this.#hopeless;
    this.#hopeless = reason;
    if (reason !== null) {
      // Stop punching now, not at the end of the round.
      this.#roundActive = false;
      this.#nextRoundAt = Infinity;
    }
    return was !== null && reason === null ? this.#trigger(now) : [];
  }

  /** Connector: the agent signalled round `round`; punch it now. */
  roundSignalled(round: number, now: number): PathAction[] {
    if (this.#o.role !== "connector" || this.#hopeless !== null) return [];
    this.#begin(round, now);
    return this.tick(now);
  }

  /**
   * A verified punch from `from` arrived: a ping (the peer's NAT lets its packets
   * out towards us) or a pong (two-way, with its round-trip time).
   */
  punchHeard(
    from: string,
    kind: "ping" | "pong",
    rttMs: number | undefined,
    now: number,
  ): PathAction[] {
    const actions: PathAction[] = [];
    if (!this.targets.includes(from) && this.#reflexive.length < this.#o.maxReflexive) {
      this.#reflexive.push(from);
    }
    if (!this.targets.includes(from)) return actions;
    if (rttMs !== undefined) this.#rtt.set(from, rttMs);
    if (this.#o.role !== "agent") return actions;
    const first = !this.#heard.has(from);
    this.#heard.add(from);
    if (kind === "pong") this.#suspect.delete(from);
    if (this.#validated.has(from)) {
      actions.push(...this.#consider(from, `${kind} from a validated path`, now));
    } else if (first) {
      // The hole is open now: probe at once rather than at the next tick.
      actions.push({ type: "probe", target: from });
    }
    return actions;
  }

  /** Agent: quiche validated the path to `target`. */
  pathValidated(target: string, now: number): PathAction[] {
    if (this.#o.role !== "agent") return [];
    this.#validated.add(target);
    this.#heard.add(target);
    this.#suspect.delete(target);
    return this.#consider(target, "validated", now);
  }

  /** Agent: quiche gave up validating the path to `target`. */
  pathFailed(target: string, now: number): PathAction[] {
    if (this.#o.role !== "agent") return [];
    this.#validated.delete(target);
    const actions: PathAction[] = [{ type: "retire", target }];
    if (this.#current === target) {
      actions.push(...this.#fallBack("direct path failed validation", now));
    }
    return actions;
  }

  /** The session's active path as quiche reports it (it may move on its own). */
  activePathIs(choice: PathChoice, now: number): void {
    if (choice === this.#current) return;
    this.#current = choice;
    if (choice !== "relay") this.#resetLiveness(now);
  }

  /**
   * While direct: counters sampled now. The agent answers keep-alives for a
   * quiet path and the fallback to the relay for a silent one; the connector
   * nudges the relay when a busy direct path goes silent.
   */
  traffic(sample: TrafficSample, now: number): PathAction[] {
    if (this.#current === "relay") return [];
    if (sample.packetsReceived !== this.#lastReceived) {
      if (this.#lastReceived !== undefined) this.#firstUnansweredAt = null;
      this.#lastReceived = sample.packetsReceived;
      this.#lastReceivedAt = now;
      this.#nudged = false;
    }
    if (sample.datagrams !== this.#lastDatagrams) {
      if (this.#lastDatagrams !== undefined) this.#lastActivityAt = now;
      this.#lastDatagrams = sample.datagrams;
    }
    const quiet = now - this.#lastReceivedAt;
    if (this.#o.role === "connector") {
      const busy = this.#lastActivityAt > this.#lastReceivedAt - this.#o.activeWindowMs;
      if (this.#nudged || !busy || quiet < this.#o.silenceMs) return [];
      this.#nudged = true;
      return [{ type: "nudge-relay" }];
    }
    if (
      this.#firstUnansweredAt !== null &&
      now - this.#firstUnansweredAt >= this.#o.unansweredMs && quiet >= this.#o.silenceMs
    ) {
      return this.#fallBack(`direct silent ${(quiet / 1000).toFixed(1)} s`, now);
    }
    const interval = now - this.#lastActivityAt < this.#o.activeWindowMs
      ? this.#o.keepaliveActiveMs
      : this.#o.keepaliveIdleMs;
    if (quiet >= interval && now - this.#lastKeepaliveAt >= interval) {
      this.#lastKeepaliveAt = now;
      this.#firstUnansweredAt ??= now;
      return [{ type: "keepalive", target: this.#current }];
    }
    return [];
  }

  /** Runs what is due at `now`: punch ticks, the end of a round, a planned round. */
  tick(now: number): PathAction[] {
    const actions: PathAction[] = [];
    if (this.#roundActive) {
      const { schedule } = this.#o;
      let due = false;
      while (this.#tick < schedule.length && now >= this.#roundStart + schedule[this.#tick]) {
        this.#tick++;
        due = true;
      }
      if (due && this.targets.length > 0) {
        actions.push({ type: "punch", round: this.#round, targets: this.targets });
        if (this.#o.role === "agent") {
          for (const target of this.targets) {
            if (!this.#validated.has(target) || this.#suspect.has(target)) {
              actions.push({ type: "probe", target });
            }
          }
        }
      }
      if (now >= this.#roundStart + this.#o.roundMs) this.#end(now);
    }
    if (!this.#roundActive && this.#o.role === "agent" && now >= this.#nextRoundAt) {
      actions.push(...this.#start(now));
    }
    return actions;
  }

  /** Starts a round now, unless one started less than `minRoundGapMs` ago. */
  #trigger(now: number): PathAction[] {
    if (this.#o.role !== "agent") return [];
    this.#retry = 0;
    if (this.#roundActive && now - this.#roundStart < this.#o.minRoundGapMs) return [];
    return this.#start(now);
  }

  #start(now: number): PathAction[] {
    this.#nextRoundAt = Infinity;
    if (this.#hopeless !== null || this.targets.length === 0) return [];
    this.#begin(((this.#round + 1) & 0xffff) || 1, now);
    return [{ type: "signal-round", round: this.#round }, ...this.tick(now)];
  }

  #begin(round: number, now: number): void {
    this.#round = round;
    this.#roundStart = now;
    this.#roundActive = true;
    this.#tick = 0;
    this.#heard.clear();
  }

  #end(now: number): void {
    this.#roundActive = false;
    if (this.#o.role !== "agent") return;
    if (this.#current === "relay") {
      const { retryMs } = this.#o;
      this.#nextRoundAt = now + retryMs[Math.min(this.#retry++, retryMs.length - 1)];
    } else {
      this.#retry = 0;
    }
  }

  /** Migrates to the newly usable `target` if it beats the current path. */
  #consider(target: string, why: string, now: number): PathAction[] {
    if (target === this.#current || this.#suspect.has(target)) return [];
    if (this.#current !== "relay" && !this.#better(target, this.#current)) return [];
    this.#current = target;
    this.#resetLiveness(now);
    return [{ type: "migrate", to: target, reason: why }];
  }

  /** True if `a` is faster than `b` by at least 10 % and 0.1 ms (no flapping on noise). */
  #better(a: string, b: string): boolean {
    const rttA = this.#rtt.get(a), rttB = this.#rtt.get(b);
    if (rttA === undefined || rttB === undefined) return false;
    return rttA < rttB * 0.9 && rttB - rttA >= 0.1;
  }

  #fallBack(reason: string, now: number): PathAction[] {
    const from = this.#current;
    if (from === "relay") return [];
    this.#suspect.add(from);
    this.#current = "relay";
    this.#retry = 0;
    if (!this.#roundActive) {
      this.#nextRoundAt = now + this.#o.retryMs[0];
      this.#retry = 1;
    }
    return [{ type: "migrate", to: "relay", reason }];
  }

  #resetLiveness(now: number): void {
    this.#lastReceived = undefined;
    this.#lastReceivedAt = now;
    this.#lastDatagrams = undefined;
    this.#lastActivityAt = now;
    this.#lastKeepaliveAt = -Infinity;
    this.#firstUnansweredAt = null;
  }
}
