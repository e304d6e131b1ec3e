/**
 * One end-to-end session between an agent and a connector: its QUIC
 * connection (ALPN ztna-session/1), its relay path and its direct paths, the
 * signalling stream inside it, and the driver that runs its PathPolicy:
 * punching from the node's one UDP socket, QUIC path validation, migration of
 * the live connection and the fallback to the relay. Used by both roles.
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, parseHostPort, type SocketAddress } from "../net/address.ts";
import type { Connection, PathStatistics } from "../quic/connection.ts";
import type { Endpoint } from "../quic/endpoint.ts";
import type { QuicConfig } from "../quic/config.ts";
import type { QuicStream } from "../quic/stream.ts";
import { type CloseReason, describeClose, QuicheError } from "../quic/errors.ts";
import type { RelayLink, SessionAssignment } from "../node/relay_link.ts";
import { FatalRelayError } from "../node/relay_link.ts";
import { SESSION_ACCESS_DENIED, SESSION_PROTOCOL_ERROR } from "../relay/constants.ts";
import { sessionIdBytes } from "../relay/session_id.ts";
import { acceptPeerCandidates, localCandidates, type LocalFacts } from "./candidates.ts";
import {
  type PathAction,
  type PathChoice,
  PathPolicy,
  type PathPolicyState,
} from "./path_policy.ts";
import { type PunchFields, type PunchRefusal, PunchSigner, PunchVerifier } from "./punch_packet.ts";
import { RelayPath } from "./relay_path.ts";
import { directPathHopeless, type NatSummary } from "./nat_compat.ts";
import {
  decodePunchKey,
  encodePunchKey,
  type Signal,
  SIGNAL_STREAM_ID,
  SignalStream,
} from "./signals.ts";

const log = getLogger(["ztna", "session"]);

/** How often an agent samples a direct path's counters (keep-alive, fallback)... */
const SAMPLE_MS = 100;
/** ...and a connector (to notice its own NAT changing under a busy session). */
const CONNECTOR_SAMPLE_MS = 250;
/** How long an agent waits for the connector's verdict after the handshake. */
const ADMISSION_TIMEOUT_MS = 10_000;

/** What a session needs from the node it runs on. */
export interface SessionContext {
  endpoint: Endpoint;
  link: RelayLink;
  /** The facts this end's candidates are gathered from, now. */
  localFacts(): LocalFacts;
  /** Keep sessions on the relay (no punching, no direct path). */
  relayOnly: boolean;
  /** This end's NAT behaviour, once measured. */
  localNat(): NatSummary | null;
  /** The clock (ms); default `performance.now`. */
  now?: () => number;
}

/** Counters of a session's direct-path work. */
export interface SessionCounters {
  punchesSent: number;
  pongsSent: number;
  punchesAccepted: number;
  punchesRefused: Record<PunchRefusal | "no-key", number>;
  probes: number;
  probeErrors: number;
  migrations: number;
  fallbacks: number;
}

/** One path of a session, for status output. */
export interface SessionPathStatus {
  /** `relay`, or the direct peer address. */
  path: string;
  active: boolean;
  state: PathStatistics["state"];
  rttMs: number;
  packetsSent: number;
  packetsReceived: number;
  bytesSent: number;
  bytesReceived: number;
}

/** A session as status output shows it. */
export interface SessionStatus {
  id: string;
  service: string;
  role: "agent" | "connector";
  /** The other end's node name. */
  peer: string;
  /** `relay` or `direct IP:PORT`. */
  path: string;
  /** How long it has been on that path (ms). */
  pathAgeMs: number;
  rttMs: number | undefined;
  paths: SessionPathStatus[];
  counters: SessionCounters;
  policy: PathPolicyState;
}

/** True for the connector's access-list refusal. */
export function isAccessDenied(reason: CloseReason): boolean {
  return reason.by === "peer" && reason.isApplication && reason.code === SESSION_ACCESS_DENIED;
}

/** A session end. */
export class Session {
  readonly role: "agent" | "connector";
  readonly service: string;
  /** The other end's node name, as the relay announced it. */
  readonly peerName: string;
  readonly relayPath: RelayPath;
  /** The ID the session started with: its punch packets carry it even after a rename. */
  readonly punchId: string;
  readonly counters: SessionCounters = {
    punchesSent: 0,
    pongsSent: 0,
    punchesAccepted: 0,
    punchesRefused: { "no-key": 0, malformed: 0, "bad-mac": 0, stale: 0, replayed: 0 },
    probes: 0,
    probeErrors: 0,
    migrations: 0,
    fallbacks: 0,
  };
  #id: string;
  readonly #ctx: SessionContext;
  readonly #now: () => number;
  readonly #signer: PunchSigner;
  readonly #policy: PathPolicy;
  #verifier: PunchVerifier | null = null;
  #connection: Connection | null = null;
  #signals: SignalStream | null = null;
  /** What this end last announced (candidates and NAT), to announce only changes. */
  #announced = "";
  /** The candidate addresses in it. */
  #announcedAddresses = "";
  #peerNat: NatSummary | null = null;
  #hopeless: string | null = null;
  /** Destination connection ID sequence of each probed direct path. */
  readonly #dcids = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #path: PathChoice = "relay";
  #since: number;
  #closed = false;
  #resolveClosed!: () => void;
  /** Resolves once the session ended and its relay path is detached. */
  readonly closed: Promise<void>;
  #admitted!: () => void;
  readonly #admission: Promise<void>;

  /**
   * A session the relay assigned, carried through virtual peer number
   * `virtualIndex`. The agent then calls `connect`; the connector, `admit`.
   */
  constructor(ctx: SessionContext, assignment: SessionAssignment, virtualIndex: number) {
    this.#ctx = ctx;
    this.#now = ctx.now ?? (() => performance.now());
    this.role = assignment.side;
    this.service = assignment.service;
    this.peerName = assignment.peer;
    this.#id = assignment.session;
    this.punchId = assignment.session;
    this.#since = this.#now();
    this.relayPath = new RelayPath(ctx.endpoint, ctx.link, assignment.session, virtualIndex);
    this.#signer = new PunchSigner(sessionIdBytes(assignment.session), this.#now());
    this.#policy = new PathPolicy({ role: assignment.side });
    if (ctx.relayOnly) this.#policy.setHopeless("relay-only mode", this.#since);
    this.#admission = new Promise((resolve) => this.#admitted = resolve);
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
  }

  /**
   * Agent: connects the session through the relay path (QUIC client to the
   * connector's certificate name), exchanges candidates and waits for the
   * connector's `admitted`. Rejects with FatalRelayError on access denied; the
   * session is then closed.
   */
  async connect(options: { serverName: string; config: QuicConfig }): Promise<void> {
    const assignment = { peer: this.peerName };
    try {
      const connection = this.#ctx.endpoint.connect({
        peer: this.relayPath.address,
        serverName: options.serverName,
        config: options.config,
      });
      this.#attach(connection);
      await connection.established;
      this.#startSignalling(connection.openStream());
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        this.#admission.then(() => null),
        connection.closed,
        new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), ADMISSION_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (outcome === "timeout") {
        connection.close(0, "no admission");
        throw new Error(`connector ${assignment.peer} did not admit the session in time`);
      }
      if (outcome && isAccessDenied(outcome)) {
        throw new FatalRelayError(`connector ${assignment.peer} refused this agent: access denied`);
      }
      if (outcome) {
        throw new Error(`session to ${assignment.peer} ended at once: ${describeClose(outcome)}`);
      }
    } catch (error) {
      this.#connection?.close(0, "session set-up failed");
      this.#shutDown();
      throw error;
    }
  }

  /** The relay's session ID (hex). */
  get id(): string {
    return this.#id;
  }

  /** The session's QUIC connection, once there is one. */
  get connection(): Connection | null {
    return this.#connection;
  }

  /** True once the session ended. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Connector: admits the agent's connection: signalling starts with `admitted`. */
  admit(connection: Connection): void {
    this.#attach(connection);
    connection.onStream((stream) => {
      if (stream.id !== SIGNAL_STREAM_ID || this.#signals) return;
      this.#startSignalling(stream);
      this.#signal({ type: "admitted" });
      this.#admitted();
    });
  }

  /** The session continues under a new relay ID (the agent re-opened it at the relay). */
  renamed(id: string): void {
    this.#id = id;
    this.relayPath.id = id;
  }

  /** A punch packet for this session arrived from `from`. */
  receivePunch(packet: Uint8Array, from: SocketAddress): void {
    if (this.#closed) return;
    if (!this.#verifier) {
      this.counters.punchesRefused["no-key"]++;
      return;
    }
    const now = this.#now();
    const fields = this.#verifier.verify(packet, now);
    if (typeof fields === "string") {
      this.counters.punchesRefused[fields]++;
      return;
    }
    this.counters.punchesAccepted++;
    const rtt = this.#answer(fields, from, now);
    this.#run(this.#policy.punchHeard(formatAddress(from), fields.kind, rtt, now));
  }

  /**
   * This end's candidates or NAT behaviour may have changed (observed address,
   * interfaces, a NAT check): announce them; new addresses also start a round.
   */
  localChanged(): void {
    if (this.#closed || !this.#signals) return;
    const before = this.#announcedAddresses;
    if (this.#announceCandidates() && this.#announcedAddresses !== before) {
      this.#run(this.#policy.localChanged(this.#now()));
    }
  }

  /** The relay says the other end's observed address changed. */
  peerMoved(): void {
    if (this.#closed || !this.#signals) return;
    this.#run(this.#policy.peerMoved(this.#now()));
  }

  /** Ends the session (closing its QUIC connection) and detaches its relay path. */
  close(reason: string): void {
    this.#connection?.close(0, reason);
    if (!this.#connection) this.#shutDown();
  }

  /** What the session does now, for status output. */
  status(): SessionStatus {
    const paths = this.#connection?.isClosed === false ? this.#connection.pathStats() : [];
    const virtual = formatAddress(this.relayPath.address);
    const label = (peer: SocketAddress) =>
      formatAddress(peer) === virtual ? "relay" : formatAddress(peer);
    const active = paths.find((p) => p.active);
    return {
      id: this.#id,
      service: this.service,
      role: this.role,
      peer: this.peerName,
      path: this.#path === "relay" ? "relay" : `direct ${this.#path}`,
      pathAgeMs: Math.round(this.#now() - this.#since),
      rttMs: active?.rttMs,
      paths: paths.map((p) => ({
        path: label(p.peer),
        active: p.active,
        state: p.state,
        rttMs: p.rttMs,
        packetsSent: p.packetsSent,
        packetsReceived: p.packetsReceived,
        bytesSent: p.bytesSent,
        bytesReceived: p.bytesReceived,
      })),
      counters: structuredClone(this.counters),
      policy: this.#policy.state(),
    };
  }

  /** True while the session's packets take a direct path. */
  get isDirect(): boolean {
    return this.#path !== "relay";
  }

  /** `relay` or `direct IP:PORT`: the path the session's packets take now. */
  get pathLabel(): string {
    return this.#path === "relay" ? "via relay" : `direct ${this.#path}`;
  }

  #attach(connection: Connection): void {
    this.#connection = connection;
    connection.onPath((event) => {
      const virtual = formatAddress(this.relayPath.address);
      const peer = formatAddress(event.peer);
      const now = this.#now();
      if (this.role === "agent" && peer !== virtual) {
        if (event.type === "validated") this.#run(this.#policy.pathValidated(peer, now));
        if (event.type === "failed-validation") this.#run(this.#policy.pathFailed(peer, now));
      }
      if (this.role === "connector" && event.type === "peer-migrated") {
        this.#moved(peer === virtual ? "relay" : peer, "the agent moved");
      }
      this.#reconcile();
      this.#schedule();
    });
    connection.closed.then((reason) => {
      log.debug("session {service} {id} ended: {reason}", {
        service: this.service,
        id: this.#id,
        reason: describeClose(reason),
      });
      this.#shutDown();
    });
  }

  #startSignalling(stream: QuicStream): void {
    const signals = new SignalStream(stream);
    this.#signals = signals;
    this.#announceCandidates();
    void this.#readSignals(signals);
  }

  async #readSignals(signals: SignalStream): Promise<void> {
    try {
      for (let signal = await signals.receive(); signal; signal = await signals.receive()) {
        this.#onSignal(signal);
      }
    } catch (error) {
      if (this.#closed || this.#connection?.isClosed) return;
      log.warn("session {service} {id}: signalling failed: {error}", {
        service: this.service,
        id: this.#id,
        error: String(error),
      });
      this.#connection?.close(SESSION_PROTOCOL_ERROR, "signalling failed");
    }
  }

  #onSignal(signal: Signal): void {
    const now = this.#now();
    switch (signal.type) {
      case "admitted":
        if (this.role === "agent") this.#admitted();
        return;
      case "candidates": {
        this.#verifier ??= new PunchVerifier(
          sessionIdBytes(this.punchId),
          decodePunchKey(signal.key),
          signal.clock,
          now,
        );
        this.#peerNat = signal.nat ?? null;
        this.#judgeNats(now);
        const accepted = acceptPeerCandidates(signal.candidates, this.#ctx.localFacts());
        log.debug("session {service} {id}: peer candidates {candidates}", {
          service: this.service,
          id: this.#id,
          candidates: accepted.map((c) => `${c.address} (${c.kind})`).join(", "),
        });
        this.#run(this.#policy.setRemoteCandidates(accepted.map((c) => c.address), now));
        return;
      }
      case "punch":
        this.#run(this.#policy.roundSignalled(signal.round, now));
        return;
    }
  }

  /** Sends this end's candidates (and NAT behaviour) if they changed; returns true if they did. */
  #announceCandidates(): boolean {
    // In relay-only mode this end offers no candidates, so the other end cannot go direct either.
    const candidates = this.#ctx.relayOnly ? [] : localCandidates(this.#ctx.localFacts());
    const nat = this.#ctx.localNat();
    const signature = JSON.stringify({ candidates, nat });
    if (signature === this.#announced) return false;
    this.#announced = signature;
    this.#announcedAddresses = candidates.map((c) => c.address).join(",");
    this.#signal({
      type: "candidates",
      key: encodePunchKey(this.#signer.key),
      clock: this.#signer.clock(this.#now()),
      candidates,
      ...(nat ? { nat } : {}),
    });
    this.#judgeNats(this.#now());
    return true;
  }

  /** Skips punching when the two NATs' behaviours leave no direct path (says so once). */
  #judgeNats(now: number): void {
    if (this.#ctx.relayOnly) return;
    const hopeless = directPathHopeless(this.#ctx.localNat(), this.#peerNat);
    if (hopeless === this.#hopeless) return;
    this.#hopeless = hopeless;
    if (hopeless) {
      log.info("session {who}: staying on the relay: {why}", { who: this.#who, why: hopeless });
    }
    this.#run(this.#policy.setHopeless(hopeless, now));
  }

  #signal(signal: Signal): void {
    this.#signals?.send(signal).catch((error) => {
      log.debug("session {id}: signal not sent: {error}", { id: this.#id, error: String(error) });
    });
  }

  /** Answers a ping with a pong of the same size; returns a pong's round-trip time. */
  #answer(fields: PunchFields, from: SocketAddress, now: number): number | undefined {
    if (fields.kind === "ping") {
      this.#ctx.endpoint.sendRaw(this.#signer.pong(fields, now), from);
      this.counters.pongsSent++;
      return undefined;
    }
    return this.#signer.roundTripMs(fields.echoTimestamp, now);
  }

  /** Carries out the policy's actions, then re-arms the timer. */
  #run(actions: PathAction[]): void {
    if (this.#closed) return;
    const connection = this.#connection;
    const now = this.#now();
    for (const action of actions) {
      switch (action.type) {
        case "signal-round":
          this.#signal({ type: "punch", round: action.round });
          break;
        case "punch":
          for (const target of action.targets) {
            this.#ctx.endpoint.sendRaw(this.#signer.ping(action.round, now), parseHostPort(target));
            this.counters.punchesSent++;
          }
          break;
        case "probe":
          if (!connection || connection.isClosed) break;
          try {
            this.#dcids.set(action.target, connection.probePath(parseHostPort(action.target)));
            this.counters.probes++;
          } catch (error) {
            this.counters.probeErrors++;
            log.debug("session {id}: probing {target}: {error}", {
              id: this.#id,
              target: action.target,
              error: String(error),
            });
          }
          break;
        case "migrate":
          this.#migrate(action.to, action.reason);
          break;
        case "keepalive":
          connection?.pingPath(parseHostPort(action.target));
          break;
        case "nudge-relay":
          log.info("session {who}: direct path quiet; telling the relay where we are", {
            who: this.#who,
          });
          this.#ctx.link.nudge();
          break;
        case "retire": {
          const sequence = this.#dcids.get(action.target);
          if (sequence !== undefined && connection?.retireDestinationId(sequence)) {
            this.#dcids.delete(action.target);
          }
          break;
        }
      }
    }
    this.#schedule();
  }

  #migrate(to: PathChoice, reason: string): void {
    const connection = this.#connection;
    if (!connection || connection.isClosed) return;
    const peer = to === "relay" ? this.relayPath.address : parseHostPort(to);
    try {
      connection.migrate(peer);
    } catch (error) {
      if (!(error instanceof QuicheError)) throw error;
      log.warn("session {service}: cannot move to {to}: {error}", {
        service: this.service,
        to,
        error: error.message,
      });
      this.#reconcile();
      return;
    }
    // A packet on the new path at once, so the connector follows now.
    connection.ping();
    if (to === "relay") this.counters.fallbacks++;
    else this.counters.migrations++;
    this.#moved(to, reason);
  }

  /** Records and logs a switch of the session's path. */
  #moved(to: PathChoice, reason: string): void {
    if (to === this.#path) return;
    this.#path = to;
    this.#since = this.#now();
    const who = this.#who;
    if (to === "relay") {
      log.info("session {who}: back to the relay ({reason})", { who, reason });
    } else {
      const rtt = this.#policy.state().rttMs[to];
      log.info("session {who}: direct {to} ({rtt}; {reason})", {
        who,
        to,
        rtt: rtt === undefined ? "rtt unknown" : `rtt ${rtt.toFixed(2)} ms`,
        reason,
      });
    }
  }

  /** The session as logs name it: `web`, or `web from alice` on the connector. */
  get #who(): string {
    return this.role === "agent" ? this.service : `${this.service} from ${this.peerName}`;
  }

  /** Brings the policy in line with the path quiche actually uses. */
  #reconcile(): void {
    const active = this.#connection?.activePath();
    if (!active) return;
    const peer = formatAddress(active.peer);
    const choice = peer === formatAddress(this.relayPath.address) ? "relay" : peer;
    this.#policy.activePathIs(choice, this.#now());
    if (this.role === "agent") this.#moved(choice, "quiche moved the session");
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    const now = this.#now();
    let wake = this.#policy.nextWakeup();
    if (this.#policy.current !== "relay") {
      wake = Math.min(wake, now + (this.role === "agent" ? SAMPLE_MS : CONNECTOR_SAMPLE_MS));
    }
    if (!Number.isFinite(wake)) return;
    this.#timer = setTimeout(() => this.#onTimer(), Math.max(0, wake - now));
  }

  #onTimer(): void {
    const connection = this.#connection;
    if (this.#closed || !connection || connection.isClosed) return;
    const now = this.#now();
    const actions: PathAction[] = [];
    const current = this.#policy.current;
    if (current !== "relay") {
      const path = connection.pathStats().find((p) => formatAddress(p.peer) === current);
      const stats = connection.stats();
      actions.push(...this.#policy.traffic({
        packetsReceived: path?.packetsReceived ?? 0,
        datagrams: stats.datagramsSent + stats.datagramsReceived,
      }, now));
    }
    actions.push(...this.#policy.tick(now));
    this.#run(actions);
  }

  #shutDown(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.relayPath.close();
    this.#resolveClosed();
  }
}
