/**
 * The relay's sessions: it matches an agent's `open-session` with a connector
 * that publishes the service, asks that connector first (admission before
 * exposure: the connector accepts or refuses before the agent hears anything
 * and before any packet is forwarded), answers the agent, and then forwards
 * the session's DATAGRAMs between the two. Session IDs are always chosen here;
 * an agent continuing a session after losing the relay names the old ID and
 * the connector decides whether it held that session for that agent.
 */
import { getLogger } from "@logtape/logtape";
import type { ErrorCode, Message } from "../control/messages.ts";
import type { RelayNode } from "./relay_node.ts";
import { SESSION_ID_BYTES, sessionIdHex } from "./session_id.ts";

const log = getLogger(["ztna", "relay"]);

/** Default bound on live sessions (pending or open) at the relay. */
export const MAX_SESSIONS = 100_000;
/** Default bound on one agent's sessions (pending or open). */
export const MAX_SESSIONS_PER_AGENT = 256;
/** Default time a connector has to accept or refuse a session. */
export const ADMISSION_TIMEOUT_MS = 5_000;

/** What a session broker needs from the relay. */
export interface SessionBrokerHost {
  /** Queues a control message for a node. */
  post(node: RelayNode, message: Message): void;
  /** Answers a request with an `error` (and notes the refusal). */
  refuse(
    node: RelayNode,
    code: ErrorCode,
    message: string,
    extra: { id?: number; service?: string; session?: string },
  ): void;
  /** Connectors publishing `service` now. */
  publishers(service: string): Iterable<RelayNode>;
}

/** Bounds of a session broker. */
export interface SessionLimits {
  maxSessions: number;
  maxSessionsPerAgent: number;
  admissionTimeoutMs: number;
}

/** What the relay forwarded for one session. */
export interface SessionCounters {
  /** DATAGRAMs forwarded from the agent to the connector, and their bytes. */
  agentToConnector: number;
  agentToConnectorBytes: number;
  /** DATAGRAMs forwarded from the connector to the agent, and their bytes. */
  connectorToAgent: number;
  connectorToAgentBytes: number;
}

/** A live session as the relay sees it. */
export interface SessionSnapshot extends SessionCounters {
  id: string;
  service: string;
  agent: string;
  connector: string;
  /** `pending` until the connector accepted it. */
  state: "pending" | "open";
}

/** Counters of the broker. */
export interface BrokerStats {
  sessionsOpened: number;
  /** Sessions connectors refused (access list, their limits). */
  sessionsRefused: number;
  /** Sessions a connector did not answer in time. */
  admissionTimeouts: number;
  /** Requests refused by the relay's session bounds. */
  sessionLimitHits: number;
  datagramsForwarded: number;
  bytesForwarded: number;
  /** DATAGRAMs dropped: unknown or pending session, sender not in it. */
  droppedNoSession: number;
  droppedRateLimited: number;
  droppedPeerQueueFull: number;
}

/** One agent-connector pair. */
interface Session {
  id: string;
  service: string;
  agent: RelayNode;
  connector: RelayNode;
  /** The agent's `open-session` request, answered once the connector decided. */
  request: number;
  /** The session the agent asked to continue. */
  resumes: string | undefined;
  /** Until the connector's answer: the deadline's timer. */
  pending: ReturnType<typeof setTimeout> | undefined;
  counters: SessionCounters;
}

/** The relay's sessions. */
export class SessionBroker {
  readonly stats: BrokerStats = {
    sessionsOpened: 0,
    sessionsRefused: 0,
    admissionTimeouts: 0,
    sessionLimitHits: 0,
    datagramsForwarded: 0,
    bytesForwarded: 0,
    droppedNoSession: 0,
    droppedRateLimited: 0,
    droppedPeerQueueFull: 0,
  };
  readonly #host: SessionBrokerHost;
  readonly #limits: SessionLimits;
  readonly #sessions = new Map<string, Session>();

  constructor(host: SessionBrokerHost, limits: SessionLimits) {
    this.#host = host;
    this.#limits = limits;
  }

  /** Number of live sessions (pending or open). */
  get size(): number {
    return this.#sessions.size;
  }

  /** Every live session with what the relay forwarded for it. */
  snapshots(): SessionSnapshot[] {
    return [...this.#sessions.values()].map((session) => ({
      id: session.id,
      service: session.service,
      agent: session.agent.grants.name,
      connector: session.connector.grants.name,
      state: session.pending === undefined ? "open" : "pending",
      ...session.counters,
    }));
  }

  /**
   * An agent's `open-session`: picks the least busy connector publishing the
   * service and announces the session to it; the agent is answered when the
   * connector decides.
   */
  open(agent: RelayNode, id: number, service: string, resume: string | undefined): void {
    const host = this.#host;
    if (agent.grants.role !== "agent") {
      host.refuse(agent, "forbidden", "only agents open sessions", { id, service });
      return;
    }
    if (this.#sessions.size >= this.#limits.maxSessions) {
      this.stats.sessionLimitHits++;
      host.refuse(agent, "limit-reached", `the relay holds its limit of sessions`, { id, service });
      return;
    }
    if (agent.sessions.size >= this.#limits.maxSessionsPerAgent) {
      this.stats.sessionLimitHits++;
      host.refuse(
        agent,
        "limit-reached",
        `${agent.grants.name} holds its limit of ${this.#limits.maxSessionsPerAgent} sessions`,
        { id, service },
      );
      return;
    }
    const previous = resume === undefined ? undefined : this.#sessions.get(resume);
    // Another agent's live session, or one not yet accepted, is not for this agent to continue.
    const continuable = previous === undefined ||
      (previous.agent.grants.name === agent.grants.name && previous.service === service &&
        previous.pending === undefined);
    const connectors = [...host.publishers(service)];
    if (connectors.length === 0) {
      host.refuse(agent, "unknown-service", `no connector publishes ${service}`, { id, service });
      return;
    }
    // The connector holding the session to continue, else the least busy one.
    const connector = previous && continuable && connectors.includes(previous.connector)
      ? previous.connector
      : connectors.sort((a, b) => a.sessions.size - b.sessions.size)[0];
    if (previous && continuable) {
      // The old ID is retired; its connector hears of it only if the session moves elsewhere.
      if (previous.connector === connector) this.#forget(previous);
      else this.#end(previous, "continued at another connector", agent);
    }
    const session: Session = {
      id: this.#newId(),
      service,
      agent,
      connector,
      request: id,
      resumes: continuable ? resume : undefined,
      pending: setTimeout(() => this.#timedOut(session), this.#limits.admissionTimeoutMs),
      counters: {
        agentToConnector: 0,
        agentToConnectorBytes: 0,
        connectorToAgent: 0,
        connectorToAgentBytes: 0,
      },
    };
    this.#sessions.set(session.id, session);
    agent.sessions.add(session.id);
    connector.sessions.add(session.id);
    host.post(connector, {
      type: "session",
      session: session.id,
      service,
      peer: agent.grants.name,
      side: "connector",
      ...(session.resumes ? { resumes: session.resumes } : {}),
    });
  }

  /** A connector's `accept-session`: answers the agent and starts forwarding. */
  accept(connector: RelayNode, id: string, resumes: string | undefined): void {
    const session = this.#pendingOf(connector, id);
    if (!session) return;
    clearTimeout(session.pending);
    session.pending = undefined;
    this.stats.sessionsOpened++;
    const continued = resumes !== undefined && resumes === session.resumes;
    log.info("session {id}: {agent} -> {service} at {connector}{resumed}", {
      id: session.id,
      agent: session.agent.grants.name,
      service: session.service,
      connector: connector.grants.name,
      resumed: continued ? ` (continues ${resumes})` : "",
    });
    this.#host.post(session.agent, {
      type: "session",
      id: session.request,
      session: session.id,
      service: session.service,
      peer: connector.grants.name,
      side: "agent",
      ...(continued ? { resumes } : {}),
    });
  }

  /** A connector's `refuse-session`: the agent gets the connector's code at once. */
  refuse(
    connector: RelayNode,
    id: string,
    code: "access-denied" | "limit-reached",
    message: string,
  ): void {
    const session = this.#pendingOf(connector, id);
    if (!session) return;
    this.stats.sessionsRefused++;
    this.#forget(session);
    this.#host.refuse(
      session.agent,
      code,
      `connector ${connector.grants.name} refused this agent: ${message}`,
      { id: session.request, service: session.service },
    );
  }

  /** A node's `close-session`: ends the session for the other end too. */
  closeSession(node: RelayNode, id: string, reason: string): void {
    const session = this.#sessions.get(id);
    if (!session || (session.agent !== node && session.connector !== node)) return;
    this.#end(session, reason, node);
  }

  /** Ends every session of a node that left the relay. */
  nodeLeft(node: RelayNode): void {
    for (const id of [...node.sessions]) {
      const session = this.#sessions.get(id);
      if (session) this.#end(session, `${node.grants.name} left the relay`, node);
    }
  }

  /** Tells the other end of each of `node`'s open sessions that its address changed. */
  nodeMoved(node: RelayNode): void {
    for (const id of node.sessions) {
      const session = this.#sessions.get(id);
      if (!session || session.pending !== undefined) continue;
      const other = session.agent === node ? session.connector : session.agent;
      this.#host.post(other, { type: "peer-moved", session: id });
    }
  }

  /** Forwards a session DATAGRAM from `from` to the other end of its open session. */
  forward(from: RelayNode, data: Uint8Array): void {
    const stats = this.stats;
    const session = data.length > SESSION_ID_BYTES
      ? this.#sessions.get(sessionIdHex(data.subarray(0, SESSION_ID_BYTES)))
      : undefined;
    const to = session === undefined || session.pending !== undefined
      ? undefined
      : session.agent === from
      ? session.connector
      : session.connector === from
      ? session.agent
      : undefined;
    if (!to) {
      stats.droppedNoSession++;
      return;
    }
    if (!from.bucket.take()) {
      stats.droppedRateLimited++;
      return;
    }
    if (!to.connection.sendDatagram(data)) {
      stats.droppedPeerQueueFull++;
      return;
    }
    stats.datagramsForwarded++;
    stats.bytesForwarded += data.length;
    const counters = session!.counters;
    if (from === session!.agent) {
      counters.agentToConnector++;
      counters.agentToConnectorBytes += data.length;
    } else {
      counters.connectorToAgent++;
      counters.connectorToAgentBytes += data.length;
    }
  }

  /** Stops every admission timer. */
  close(): void {
    for (const session of this.#sessions.values()) clearTimeout(session.pending);
  }

  /** The pending session `id` announced to `connector`, if it is one. */
  #pendingOf(connector: RelayNode, id: string): Session | undefined {
    const session = this.#sessions.get(id);
    return session?.connector === connector && session.pending !== undefined ? session : undefined;
  }

  #timedOut(session: Session): void {
    if (this.#sessions.get(session.id) !== session) return;
    this.stats.admissionTimeouts++;
    log.warn("connector {connector} did not answer session {id} in {ms} ms", {
      connector: session.connector.grants.name,
      id: session.id,
      ms: this.#limits.admissionTimeoutMs,
    });
    this.#end(session, "the connector did not answer", undefined);
  }

  /**
   * Ends a session: the other end(s) hear `close-session`, except `by`; an
   * agent still waiting for its answer hears `unavailable` instead.
   */
  #end(session: Session, reason: string, by: RelayNode | undefined): void {
    const { counters } = session;
    const wasPending = session.pending !== undefined;
    this.#forget(session);
    log.info("session {id} closed ({reason}); relayed {toConnector} + {toAgent} DATAGRAMs", {
      id: session.id,
      reason,
      toConnector: counters.agentToConnector,
      toAgent: counters.connectorToAgent,
    });
    for (const node of [session.agent, session.connector]) {
      if (node === by || node.connection.isClosed) continue;
      if (wasPending && node === session.agent) {
        this.#host.refuse(node, "unavailable", `session not opened: ${reason}`, {
          id: session.request,
          service: session.service,
        });
      } else {
        this.#host.post(node, { type: "close-session", session: session.id, reason });
      }
    }
  }

  /** Drops a session from every table, telling no one. */
  #forget(session: Session): void {
    clearTimeout(session.pending);
    session.pending = undefined;
    this.#sessions.delete(session.id);
    session.agent.sessions.delete(session.id);
    session.connector.sessions.delete(session.id);
  }

  /** A fresh random session ID no live session uses. */
  #newId(): string {
    for (;;) {
      const id = sessionIdHex(crypto.getRandomValues(new Uint8Array(SESSION_ID_BYTES)));
      if (!this.#sessions.has(id)) return id;
    }
  }
}
