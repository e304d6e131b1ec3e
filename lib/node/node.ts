/**
 * A node (agent or connector): one endpoint on one UDP socket, its link to the
 * relay, and its sessions. The set-up both roles share lives here: QUIC
 * configurations, the socket (dual-stack where the host has IPv6), the facts
 * candidates are gathered from (observed address, interfaces, watched for
 * changes; the NAT's behaviour, measured from this socket against the relay's
 * STUN service at start and after changes), resuming agent sessions after the
 * relay came back, and the connector's admission hook.
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, type SocketAddress } from "../net/address.ts";
import type { HostPort, Resolver } from "../net/resolve.ts";
import type { Connection } from "../quic/connection.ts";
import { Endpoint } from "../quic/endpoint.ts";
import { serviceServerName } from "../pki/grants.ts";
import type { InterfaceAddress, LocalFacts } from "../session/candidates.ts";
import type { Session } from "../session/session.ts";
import { SessionTable, type SessionTableLimits } from "../session/session_table.ts";
import { freeNodeConfigs, type NodeConfigs, nodeConfigs, type NodeIdentity } from "./configs.ts";
import {
  type CheckedIdentity,
  checkIdentityFiles,
  identityChanges,
  readIdentitySnapshot,
} from "../identity/identity_check.ts";
import { RelayLink, RelayRequestError, type SessionAssignment } from "./relay_link.ts";
import { SESSION_ACCESS_DENIED } from "../relay/constants.ts";
import type { NodeStatus } from "../admin/node_status.ts";
import { checkNat, type NatCheckResult } from "../natcheck/mod.ts";
import type { NatSummary } from "../session/nat_compat.ts";

const log = getLogger(["ztna", "node"]);

/** How often the host's interface addresses are checked for a network change. */
const INTERFACE_POLL_MS = 2_000;
/** How long an agent keeps trying to resume a session the relay lost. */
const RESUME_WINDOW_MS = 60_000;
/** Pause between resume attempts (the connector may still be reconnecting). */
const RESUME_RETRY_MS = 250;
/** A change re-measures the NAT after this quiet time (changes come in bursts). */
const NAT_CHECK_DEBOUNCE_MS = 2_000;

/** Options of a node. */
export interface NodeOptions {
  identity: NodeIdentity;
  /** The relay: an IP address, or a host name (resolved on every connection attempt). */
  relay: HostPort;
  /** Resolves the relay's host name (default: the system's resolver, /etc/hosts included). */
  resolveRelay?: Resolver;
  relayName: string;
  role: "agent" | "connector";
  /** Address to bind; default `[::]:0` (dual-stack), or `0.0.0.0:0` without IPv6. */
  bind?: SocketAddress;
  /** Interfaces whose addresses are never candidates (the agent's TUN). */
  excludeInterfaces?: string[];
  /** Bounds on sessions (see SessionTableLimits). */
  sessionLimits?: SessionTableLimits;
  /** Keep every session on the relay: no punching, no direct path. */
  relayOnly?: boolean;
  /**
   * Connector: decides on the agent of a session the relay announces, before
   * any handshake; returns a refusal reason, or null to accept. Default: accept.
   */
  acceptAgent?: (agent: string, service: string) => string | null;
  /**
   * Connector: decides on an agent's session once its handshake completed
   * (the certificate must be the announced agent's); returns a refusal
   * reason, or null to admit. Default: admit.
   */
  admit?: (connection: Connection, session: Session | undefined) => string | null;
  /** Connector: called for each admitted session. */
  onAdmitted?: (session: Session, connection: Connection) => void;
}

/** Reads the host's interface addresses (IPv4 and IPv6). */
function readInterfaces(): InterfaceAddress[] {
  return Deno.networkInterfaces().map(({ name, family, address }) => ({ name, family, address }));
}

/** Binds the node's socket: dual-stack where possible, IPv4 otherwise. */
function bindEndpoint(
  bind: SocketAddress | undefined,
  server: Parameters<typeof Endpoint.bind>[0]["server"],
): Endpoint {
  if (bind) return Endpoint.bind({ address: bind, server });
  try {
    return Endpoint.bind({ address: { hostname: "::", port: 0 }, server });
  } catch {
    return Endpoint.bind({ address: { hostname: "0.0.0.0", port: 0 }, server });
  }
}

/** A running node. */
export class Node {
  readonly endpoint: Endpoint;
  readonly link: RelayLink;
  readonly sessions: SessionTable;
  readonly #options: NodeOptions;
  /** Configurations for new relay connections and sessions; a reload replaces them. */
  #configs: NodeConfigs;
  /** The identity files as last loaded, to say what a reload changed. */
  #identity: Promise<CheckedIdentity | null>;
  #interfaces: InterfaceAddress[] = readInterfaces();
  #watch: ReturnType<typeof setInterval> | undefined;
  #closing = false;
  /** The last NAT check's result, and whether one runs or is planned. */
  #nat: NatCheckResult | null = null;
  #natRunning: Promise<void> | null = null;
  #natTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #natAbort = new AbortController();

  constructor(options: NodeOptions) {
    this.#options = options;
    this.#configs = nodeConfigs(options.identity);
    this.#identity = readIdentitySnapshot(options.identity);
    const session = this.#configs.session;
    try {
      this.endpoint = bindEndpoint(
        options.bind,
        options.role === "connector"
          // Sessions start on the relay path: no connection ever starts from a real address.
          ? { config: session, onConnection: (c) => this.#accepted(c), acceptVirtualOnly: true }
          : undefined,
      );
    } catch (error) {
      freeNodeConfigs(this.#configs);
      throw error;
    }
    const configs = () => this.#configs;
    this.link = new RelayLink({
      endpoint: this.endpoint,
      relay: options.relay,
      resolver: options.resolveRelay,
      serverName: options.relayName,
      // Each (re)connection takes the current one: a reload applies to the next connection.
      get config() {
        return configs().relay;
      },
      role: options.role,
    });
    this.sessions = new SessionTable({
      endpoint: this.endpoint,
      link: this.link,
      localFacts: () => this.localFacts(),
      relayOnly: options.relayOnly ?? false,
      localNat: () => this.natSummary,
    }, options.sessionLimits);
    let observed = "";
    this.link.onObserved((address) => {
      this.sessions.localChanged();
      // The first address comes with the connection; start() measures the NAT then anyway.
      if (observed !== "") this.#planNatCheck();
      observed = address;
    });
    if (options.role === "connector") {
      this.link.onSession((assignment) => this.#announced(assignment));
    }
    this.link.onSessionClosed(({ session, reason }) => this.#relayEnded(session, reason));
    this.link.onReconnected(() => {
      for (const session of this.sessions.values()) this.#resume(session);
    });
  }

  /**
   * Connects to the relay (retrying while unreachable), starts watching the
   * network, and measures the NAT in the background (sessions do not wait).
   */
  async start(): Promise<void> {
    await this.link.start();
    this.#watch = setInterval(() => this.#checkInterfaces(), INTERFACE_POLL_MS);
    Deno.unrefTimer(this.#watch);
    if (!this.#options.relayOnly) this.#runNatCheck();
  }

  /** The relay address the link connected to (NAT checks go there: it is the one this socket reaches). */
  #relayAddress(): SocketAddress {
    const address = this.link.relayAddress;
    if (!address) throw new Error("not connected to the relay yet");
    return address;
  }

  /** This node's NAT behaviour from its last check, or null before one answered. */
  get natSummary(): NatSummary | null {
    const nat = this.#nat;
    if (!nat?.serverAnswered) return null;
    const part = (finding: { behavior: string }) =>
      finding.behavior === "undetermined" ? "unknown" : finding.behavior as NatSummary["mapping"];
    return {
      mapping: part(nat.classification.mapping),
      filtering: part(nat.classification.filtering),
    };
  }

  /** Re-measures the NAT once changes have settled. */
  #planNatCheck(): void {
    if (this.#closing || this.#options.relayOnly) return;
    clearTimeout(this.#natTimer);
    this.#natTimer = setTimeout(() => this.#runNatCheck(), NAT_CHECK_DEBOUNCE_MS);
    Deno.unrefTimer(this.#natTimer);
  }

  /** Measures the NAT from the node's socket (one check at a time) and tells the sessions. */
  #runNatCheck(): void {
    if (this.#closing) return;
    if (this.#natRunning) {
      this.#planNatCheck();
      return;
    }
    this.#natRunning = (async () => {
      try {
        const observed = this.link.observed;
        const result = await checkNat(this.endpoint, {
          server: this.#relayAddress(),
          signal: this.#natAbort.signal,
          // Hairpinning says nothing about direct paths between two NATs, and its request to
          // our own public address disturbed direct paths through some lab NATs: not tested here.
          hairpinning: false,
        });
        if (this.#closing) return;
        // A NAT has one public IP: answers from two mean the network changed under the check.
        const ips = new Set(result.publicAddresses.map((address) => address.hostname));
        if (this.link.observed !== observed || ips.size > 1) {
          log.debug("the network changed during the NAT check; checking again");
          this.#planNatCheck();
          return;
        }
        this.#nat = result;
        const c = result.classification;
        if (!result.serverAnswered) {
          log.info("NAT type unknown: the relay does not answer STUN (--no-stun?)");
        } else {
          log.info("NAT: {classic} (mapping {mapping}, filtering {filtering}; public {public})", {
            classic: c.classic,
            mapping: c.mapping.behavior,
            filtering: c.filtering.behavior,
            public: result.publicAddresses.map(formatAddress).join(", "),
          });
        }
        this.sessions.localChanged();
      } catch (error) {
        if (!this.#closing) log.warn("NAT check failed: {error}", { error: String(error) });
      } finally {
        this.#natRunning = null;
      }
    })();
  }

  /** The facts this node's candidates come from, now. */
  localFacts(): LocalFacts {
    return {
      port: this.endpoint.localAddress.port,
      family: this.endpoint.family,
      observed: this.link.observed || undefined,
      interfaces: this.#interfaces,
      excludeInterfaces: this.#options.excludeInterfaces,
      mappingVariesByDestination: this.#mappingVaries(),
    };
  }

  /** Whether the measured NAT maps each destination apart (undefined: not known). */
  #mappingVaries(): boolean | undefined {
    const mapping = this.natSummary?.mapping;
    return mapping === undefined || mapping === "unknown"
      ? undefined
      : mapping !== "endpoint-independent";
  }

  /**
   * Agent: opens a session to `service` through the relay and waits until the
   * connector admitted it. Rejects with RelayRequestError (unknown service),
   * FatalRelayError (access denied) or a transient error.
   */
  async openSession(service: string): Promise<Session> {
    const assignment = await this.link.openSession(service);
    return await this.sessions.open(assignment, {
      serverName: serviceServerName(service),
      config: this.#configs.session,
    });
  }

  /** What the node does now, for its admin socket; `services` are those it publishes or reaches. */
  status(services: string[]): NodeStatus {
    return {
      role: this.#options.role,
      services,
      relay: {
        address: this.link.relayLabel,
        connected: this.link.isConnected,
        rttMs: this.link.rttMs ?? null,
        observed: this.link.observed,
        reconnects: this.link.reconnects,
      },
      nat: this.#nat?.serverAnswered
        ? {
          classic: this.#nat.classification.classic,
          mapping: this.#nat.classification.mapping.behavior,
          filtering: this.#nat.classification.filtering.behavior,
          public: this.#nat.publicAddresses.map(formatAddress),
        }
        : null,
      sessions: this.sessions.values().map((session) => session.status()),
    };
  }

  /** Closes the sessions, the relay link and the socket. */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#watch);
    clearTimeout(this.#natTimer);
    this.#natAbort.abort();
    await this.#natRunning;
    this.sessions.close(`${this.#options.role} shutting down`);
    // Let the sessions' CONNECTION_CLOSE leave through the relay before its connection closes.
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.link.close();
    await this.endpoint.close();
    freeNodeConfigs(this.#configs);
  }

  /**
   * Reloads the certificate, key and CA (SIGHUP): checks the files (the
   * certificate must grant this node's role and `services`), builds new
   * configurations and uses them for the next relay connection and new
   * sessions; live ones keep theirs. Throws naming the bad file, keeping the
   * old identity. Resolves with what changed, for the reload's log line.
   */
  async reloadIdentity(identity: NodeIdentity, services: string[] = []): Promise<string[]> {
    const checked = await checkIdentityFiles(identity, { role: this.#options.role, services });
    if (this.#closing) throw new Error("the node is shutting down");
    const next = nodeConfigs(identity);
    const old = this.#configs;
    this.#configs = next;
    if (this.#options.role === "connector") this.endpoint.replaceServerConfig(next.session);
    freeNodeConfigs(old);
    const changes = identityChanges(await this.#identity, checked);
    this.#identity = Promise.resolve(checked);
    return changes;
  }

  #checkInterfaces(): void {
    const now = readInterfaces();
    const key = (list: InterfaceAddress[]) =>
      list.map((i) => `${i.name}/${i.address}`).sort().join(",");
    if (key(now) === key(this.#interfaces)) return;
    log.info("network change: interface addresses are now {addresses}", {
      addresses: now.map((i) => i.address).join(", "),
    });
    this.#interfaces = now;
    this.sessions.localChanged();
    this.#planNatCheck();
  }

  /**
   * Connector: the relay announced a session. The access list decides before
   * the agent learns anything of us; then the session table (continuing a
   * session the agent re-opened, or a new one within the limits).
   */
  #announced(assignment: SessionAssignment): void {
    const denied = this.#options.acceptAgent?.(assignment.peer, assignment.service) ?? null;
    if (denied !== null) {
      this.link.refuseSession(assignment.session, "access-denied", denied);
      return;
    }
    const verdict = this.sessions.announce(assignment);
    if ("refused" in verdict) {
      log.warn("refused a session from {agent}: {why}", {
        agent: assignment.peer,
        why: verdict.refused,
      });
      this.link.refuseSession(assignment.session, "limit-reached", verdict.refused);
      return;
    }
    if (verdict.resumed) {
      log.info("session {id} from {agent} continues as {session}", {
        id: assignment.resumes,
        agent: assignment.peer,
        session: assignment.session,
      });
    }
    this.link.acceptSession(assignment.session, verdict.resumed ? assignment.resumes : undefined);
  }

  /** Connector: an agent's session completed its handshake on our socket. */
  #accepted(connection: Connection): void {
    const session = this.sessions.byVirtualAddress(connection.initialPeer);
    const admit = this.#options.admit;
    const refusal = admit ? admit(connection, session) : null;
    if (refusal !== null || !session) {
      if (!admit) {
        log.warn("refused a session from {peer}: no session announced by the relay", {
          peer: formatAddress(connection.initialPeer),
        });
      }
      connection.close(SESSION_ACCESS_DENIED, "access denied");
      return;
    }
    session.admit(connection);
    this.#options.onAdmitted?.(session, connection);
  }

  /**
   * The relay ended a session (its other end left, or closed it). An agent
   * on the relay path has no way to the connector left: it ends the session at
   * once (the agent opens a new one). A direct session lives on; an agent
   * asks the connector to continue it at the relay as soon as it can.
   */
  #relayEnded(id: string, reason: string): void {
    const session = this.sessions.get(id);
    if (!session) return;
    log.info("the relay ended session {id} ({reason})", { id, reason });
    if (session.role === "agent" && !session.isDirect) {
      session.close(`the relay ended it: ${reason}`);
      return;
    }
    session.relayPath.attached = false;
    this.#resume(session);
  }

  /**
   * Agent: re-opens a live session at the relay, asking the connector to
   * continue it under the new ID the relay chose, so the QUIC session inside
   * keeps its relay path. A connector that no longer has it (it restarted)
   * starts afresh: the old session ends at once and the agent opens a new
   * one. The connector may still be reconnecting, so an unknown service is
   * retried for a while.
   */
  async #resume(session: Session): Promise<void> {
    if (session.role !== "agent") return;
    const deadline = Date.now() + RESUME_WINDOW_MS;
    while (!this.#closing && !session.isClosed && Date.now() < deadline) {
      try {
        const assignment = await this.link.openSession(session.service, session.id);
        if (session.isClosed || assignment.resumes !== session.id) {
          this.link.closeSession(assignment.session, "not continued");
          log.info("session {id} to {service}: the connector no longer has it; ending it", {
            id: session.id,
            service: session.service,
          });
          session.close("the connector no longer has this session");
          return;
        }
        const old = session.id;
        this.sessions.rename(session, assignment.session);
        session.relayPath.attached = true;
        log.info("session {old} to {service} continues at the relay as {id}", {
          old,
          id: session.id,
          service: session.service,
        });
        return;
      } catch (error) {
        if (error instanceof RelayRequestError && error.code !== "unknown-service") {
          log.warn("resuming session {id}: {error}", { id: session.id, error: error.message });
          return;
        }
        log.debug("resuming session {id}: {error}", { id: session.id, error: String(error) });
        await new Promise((resolve) => setTimeout(resolve, RESUME_RETRY_MS));
      }
    }
  }
}
