/**
 * A node's sessions, keyed by the relay's session ID: it owns their virtual
 * addresses and hands each session what arrives for it on the node's one
 * socket and relay connection (relay DATAGRAMs by their ID prefix, punch
 * packets by the ID inside them), and what the relay says about it.
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, type SocketAddress } from "../net/address.ts";
import type { QuicConfig } from "../quic/config.ts";
import type { Unsubscribe } from "../events/listeners.ts";
import type { SessionAssignment } from "../node/relay_link.ts";
import { SESSION_ID_BYTES, sessionIdHex } from "../relay/session_id.ts";
import { PUNCH_PING, PUNCH_PONG, punchSessionId } from "./punch_packet.ts";
import { Session, type SessionContext } from "./session.ts";

const log = getLogger(["ztna", "sessions"]);

/** Default bound on a node's sessions. */
export const DEFAULT_MAX_SESSIONS = 4_096;
/** Default bound on a connector's sessions from one agent. */
export const DEFAULT_MAX_SESSIONS_PER_AGENT = 64;
/** How long a connector keeps an accepted session whose agent has not completed its handshake. */
export const HANDSHAKE_WAIT_MS = 10_000;
/** Virtual address indices run from 1 to 2^24 - 1. */
const MAX_VIRTUAL_INDEX = (1 << 24) - 1;

/** A session could not be created because the table is full. */
export class SessionLimitError extends Error {
  constructor(limit: number) {
    super(`session limit reached (${limit} sessions)`);
    this.name = "SessionLimitError";
  }
}

/** Counters of a session table. */
export interface SessionTableStats {
  /** Relay DATAGRAMs for no session here, dropped. */
  relayUnmatched: number;
  /** Punch packets for no session here (or malformed), dropped. */
  punchUnmatched: number;
  /** Sessions refused because the table was full. */
  refusedFull: number;
  /** Connector: sessions refused because their agent held its limit. */
  refusedPerAgent: number;
  /** Connector: accepted sessions dropped because no handshake came in time. */
  handshakesMissed: number;
}

/** Bounds of a session table. */
export interface SessionTableLimits {
  /** Sessions at most (default DEFAULT_MAX_SESSIONS). */
  maxSessions?: number;
  /** Connector: sessions of one agent at most (default DEFAULT_MAX_SESSIONS_PER_AGENT). */
  maxSessionsPerAgent?: number;
  /** Connector: time an accepted session waits for its handshake (default HANDSHAKE_WAIT_MS). */
  handshakeWaitMs?: number;
}

/** A connector's verdict on an announced session. */
export type Announcement =
  | { accepted: Session; resumed: boolean }
  | { refused: string };

/** The sessions of one node. */
export class SessionTable {
  readonly stats: SessionTableStats = {
    relayUnmatched: 0,
    punchUnmatched: 0,
    refusedFull: 0,
    refusedPerAgent: 0,
    handshakesMissed: 0,
  };
  readonly #ctx: SessionContext;
  readonly #max: number;
  readonly #maxPerAgent: number;
  readonly #handshakeWaitMs: number;
  readonly #byId = new Map<string, Session>();
  /** By the ID a session started with: punch packets carry it for the session's life. */
  readonly #byPunchId = new Map<string, Session>();
  /** Connector: live sessions of each agent. */
  readonly #perAgent = new Map<string, number>();
  readonly #byVirtual = new Map<string, Session>();
  readonly #usedIndices = new Set<number>();
  #nextIndex = 1;
  readonly #unsubscribe: Unsubscribe[];

  constructor(ctx: SessionContext, limits: SessionTableLimits = {}) {
    this.#ctx = ctx;
    this.#max = limits.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.#maxPerAgent = limits.maxSessionsPerAgent ?? DEFAULT_MAX_SESSIONS_PER_AGENT;
    this.#handshakeWaitMs = limits.handshakeWaitMs ?? HANDSHAKE_WAIT_MS;
    const { link, endpoint } = ctx;
    this.#unsubscribe = [
      link.onDatagram((data) => this.#fromRelay(data)),
      endpoint.onRawPacket([PUNCH_PING, PUNCH_PONG], (packet, from) => this.#punch(packet, from)),
      link.onPeerMoved((session) => this.#byId.get(session)?.peerMoved()),
    ];
  }

  /** Every live session. */
  values(): Session[] {
    return [...this.#byId.values()];
  }

  /** The session with relay session ID `id`. */
  get(id: string): Session | undefined {
    return this.#byId.get(id);
  }

  /** Connector: the session whose relay path is at virtual address `address`. */
  byVirtualAddress(address: SocketAddress): Session | undefined {
    return this.#byVirtual.get(formatAddress(address));
  }

  /**
   * Connector: takes a session the relay announced (the access list already
   * admitted its agent). If the agent asks to continue a session this table
   * holds for that agent and service, that session goes by the new ID and its
   * relay path carries it again; otherwise a new session waits for the
   * agent's handshake, and is dropped if none completes in time. Refused when
   * the table or the agent's share of it is full.
   */
  announce(assignment: SessionAssignment): Announcement {
    const previous = assignment.resumes === undefined
      ? undefined
      : this.#byId.get(assignment.resumes);
    if (
      previous && !previous.isClosed && previous.role === "connector" &&
      previous.peerName === assignment.peer && previous.service === assignment.service
    ) {
      this.rename(previous, assignment.session);
      previous.relayPath.attached = true;
      return { accepted: previous, resumed: true };
    }
    if (!this.#hasRoom()) {
      return { refused: `the connector holds its limit of ${this.#max} sessions` };
    }
    if ((this.#perAgent.get(assignment.peer) ?? 0) >= this.#maxPerAgent) {
      this.stats.refusedPerAgent++;
      return {
        refused: `${assignment.peer} holds its limit of ${this.#maxPerAgent} sessions here`,
      };
    }
    const session = new Session(this.#ctx, assignment, this.#takeIndex());
    this.#add(session);
    const wait = setTimeout(() => {
      if (session.connection !== null || session.isClosed) return;
      this.stats.handshakesMissed++;
      log.info("session {id} from {agent}: no handshake in {ms} ms; dropped", {
        id: session.id,
        agent: session.peerName,
        ms: this.#handshakeWaitMs,
      });
      this.#ctx.link.closeSession(session.id, "no handshake");
      session.close("no handshake");
    }, this.#handshakeWaitMs);
    Deno.unrefTimer(wait);
    session.closed.then(() => clearTimeout(wait));
    return { accepted: session, resumed: false };
  }

  /** Agent: opens the session the relay assigned (see Session.connect). */
  async open(
    assignment: SessionAssignment,
    options: { serverName: string; config: QuicConfig },
  ): Promise<Session> {
    if (!this.#hasRoom()) throw new SessionLimitError(this.#max);
    const session = new Session(this.#ctx, assignment, this.#takeIndex());
    this.#add(session);
    await session.connect(options);
    return session;
  }

  /** A session now goes by another relay ID. */
  rename(session: Session, id: string): void {
    if (this.#byId.get(session.id) === session) this.#byId.delete(session.id);
    session.renamed(id);
    this.#byId.set(id, session);
  }

  /** Tells every session that this node's candidates may have changed. */
  localChanged(): void {
    for (const session of this.#byId.values()) session.localChanged();
  }

  /** Ends every session and stops listening. */
  close(reason: string): void {
    for (const session of [...this.#byId.values()]) session.close(reason);
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
  }

  #hasRoom(): boolean {
    if (this.#byId.size < this.#max) return true;
    this.stats.refusedFull++;
    log.warn("session limit of {max} reached; refusing a session", { max: this.#max });
    return false;
  }

  #takeIndex(): number {
    while (this.#usedIndices.has(this.#nextIndex)) {
      this.#nextIndex = this.#nextIndex >= MAX_VIRTUAL_INDEX ? 1 : this.#nextIndex + 1;
    }
    const index = this.#nextIndex;
    this.#usedIndices.add(index);
    this.#nextIndex = index >= MAX_VIRTUAL_INDEX ? 1 : index + 1;
    return index;
  }

  #add(session: Session): void {
    this.#byId.set(session.id, session);
    this.#byPunchId.set(session.punchId, session);
    const virtual = formatAddress(session.relayPath.address);
    this.#byVirtual.set(virtual, session);
    const agent = session.peerName;
    this.#perAgent.set(agent, (this.#perAgent.get(agent) ?? 0) + 1);
    const forget = () => {
      if (this.#byId.get(session.id) === session) this.#byId.delete(session.id);
      this.#byPunchId.delete(session.punchId);
      this.#byVirtual.delete(virtual);
      this.#usedIndices.delete(virtualIndexOf(session.relayPath.address));
      const left = (this.#perAgent.get(agent) ?? 1) - 1;
      if (left > 0) this.#perAgent.set(agent, left);
      else this.#perAgent.delete(agent);
    };
    if (session.isClosed) forget();
    else session.closed.then(forget);
  }

  #fromRelay(data: Uint8Array): void {
    const session = data.length > SESSION_ID_BYTES ? this.#byId.get(sessionIdHex(data)) : undefined;
    if (!session) {
      this.stats.relayUnmatched++;
      return;
    }
    session.relayPath.receive(data.subarray(SESSION_ID_BYTES));
  }

  #punch(packet: Uint8Array, from: SocketAddress): void {
    const id = punchSessionId(packet);
    const session = id ? this.#byPunchId.get(sessionIdHex(id)) : undefined;
    if (!session) {
      this.stats.punchUnmatched++;
      return;
    }
    session.receivePunch(packet, from);
  }
}

/** The index of a virtual address `0.a.b.c`. */
function virtualIndexOf(address: SocketAddress): number {
  const [, a, b, c] = address.hostname.split(".").map(Number);
  return (a << 16) | (b << 8) | c;
}
