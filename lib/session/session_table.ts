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
}

/** The sessions of one node. */
export class SessionTable {
  readonly stats: SessionTableStats = { relayUnmatched: 0, punchUnmatched: 0, refusedFull: 0 };
  readonly #ctx: SessionContext;
  readonly #max: number;
  readonly #byId = new Map<string, Session>();
  readonly #byVirtual = new Map<string, Session>();
  readonly #usedIndices = new Set<number>();
  #nextIndex = 1;
  readonly #unsubscribe: Unsubscribe[];

  constructor(ctx: SessionContext, maxSessions = DEFAULT_MAX_SESSIONS) {
    this.#ctx = ctx;
    this.#max = maxSessions;
    const { link, endpoint } = ctx;
    this.#unsubscribe = [
      link.onDatagram((data) => this.#fromRelay(data)),
      endpoint.onRawPacket([PUNCH_PING, PUNCH_PONG], (packet, from) => this.#punch(packet, from)),
      link.onPeerAddress(({ session }) => this.#byId.get(session)?.peerMoved()),
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

  /** Connector: records a session the relay announced; its agent connects through it next. */
  announce(assignment: SessionAssignment): Session | undefined {
    const existing = this.#byId.get(assignment.session);
    if (existing) {
      // The agent resumed it at the relay: the relay path carries it again.
      existing.relayPath.attached = true;
      return existing;
    }
    if (!this.#hasRoom()) return undefined;
    const session = new Session(this.#ctx, assignment, this.#takeIndex());
    this.#add(session);
    return session;
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
    const virtual = formatAddress(session.relayPath.address);
    this.#byVirtual.set(virtual, session);
    const forget = () => {
      if (this.#byId.get(session.id) === session) this.#byId.delete(session.id);
      this.#byVirtual.delete(virtual);
      this.#usedIndices.delete(virtualIndexOf(session.relayPath.address));
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
    const session = id ? this.#byId.get(sessionIdHex(id)) : undefined;
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
