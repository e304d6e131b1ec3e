/**
 * The connector: publishes services through the relay without root. Its node
 * dials the relay from one UDP socket, registers each service (its certificate
 * must grant them all), admits the end-to-end sessions the relay announces
 * (checking the agent's certificate against the access list of the service the
 * relay names), and terminates their IP packets in user space with that
 * service's forward targets (see Terminator). Sessions go direct when the agent
 * finds a path; the connector's end follows the agent's migrations. All sessions
 * share one set of limits (UDP flows, TCP connections, TCP buffer memory).
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, type SocketAddress } from "../net/address.ts";
import type { HostPort } from "../net/resolve.ts";
import type { Connection } from "../quic/connection.ts";
import type { NodeIdentity } from "../node/configs.ts";
import { Node } from "../node/node.ts";
import type { Session } from "../session/session.ts";
import type { SessionTableLimits } from "../session/session_table.ts";
import type { NodeStatus } from "../admin/node_status.ts";
import { readGrants } from "../pki/grants.ts";
import { addCounters, type TcpCounters, zeroCounters } from "../tcp/counters.ts";
import { type TcpHandler, Terminator } from "./terminator.ts";
import { RefusalLog } from "../events/refusal_log.ts";
import { type ConnectorLimitOptions, ConnectorLimits, type ConnectorLimitStats } from "./limits.ts";
import { openFileLimit } from "./open_file_limit.ts";
import type { PublishedService } from "./services.ts";
import {
  KernelForwarder,
  type KernelForwarderStats,
  type KernelModeOptions,
} from "./kernel/kernel_forwarder.ts";
import { DEFAULT_MAX_SESSIONS } from "../session/session_table.ts";

const log = getLogger(["ztna", "connector"]);

/**
 * The services a connector publishes: several, each with its forward targets and access
 * list (one at least), or one in the single-service form.
 */
export type ConnectorServices =
  | { services: PublishedService[] }
  | {
    service: string;
    /** Forward targets; a packet to service port P goes to the target with port P. */
    forward: SocketAddress[];
    /** Agent names allowed in; `*` allows every agent the CA issued. */
    allow: string[];
  };

/** The services of `options` as a list. */
function servicesOf(options: ConnectorServices): PublishedService[] {
  return "services" in options
    ? options.services
    : [{ name: options.service, forward: options.forward, allow: options.allow }];
}

/** Options of a connector: its services and the rest. */
export type ConnectorOptions = ConnectorServices & ConnectorBaseOptions;

/** Options of a connector besides its services. */
export interface ConnectorBaseOptions {
  identity: NodeIdentity;
  /** The relay: an IP address or a host name. */
  relay: HostPort;
  relayName: string;
  /**
   * Makes the TCP handler of a session (the userspace TCP stack), bounded by the process's
   * `limits`; none: TCP is refused.
   */
  tcp?: (
    send: (packet: Uint8Array) => void,
    targets: Map<number, SocketAddress>,
    limits: ConnectorLimits,
  ) => TcpHandler;
  /** Address the node's socket binds (default: any, a free port). */
  bind?: SocketAddress;
  /** Offer agents no direct path. */
  relayOnly?: boolean;
  /** Bounds on sessions (in all, per agent). */
  sessionLimits?: SessionTableLimits;
  /** Bounds shared by all sessions: UDP flows, TCP connections, TCP buffer memory. */
  limits?: ConnectorLimitOptions;
  /** Kernel-forwarding mode (root): sessions' packets go through a TUN, not the terminator. */
  kernel?: KernelModeOptions;
}

/**
 * What a reload (SIGHUP) reads again: the identity files and the services' access lists
 * (the same services: a reload neither adds nor removes one; their targets stay), or one
 * access list for every service (`allow`, the single-service form).
 */
export type ConnectorReload =
  & { identity: NodeIdentity }
  & ({ services: PublishedService[] } | { allow: string[] });

/** A published service as the connector serves it: its access list and targets by port. */
interface ServedService {
  allow: string[];
  targets: Map<number, SocketAddress>;
}

/** Counters of every session's terminator (live and ended), summed. */
interface TerminatorCounts {
  packetsIn: number;
  echoReplies: number;
  /** Packets refused with an ICMP unreachable (ports, protocols, UDP flow refusals). */
  refused: number;
  /** New UDP flows refused (limits and sockets that failed to open). */
  udpFlowsRefused: number;
  /** The userspace TCP stacks' counters; gauges among them count live connections. */
  tcp: TcpCounters;
}

/** The terminators' totals since start, and the process's limits. */
export type TerminatorTotals = TerminatorCounts & ConnectorLimitStats;

function zeroTerminatorCounts(): TerminatorCounts {
  return { packetsIn: 0, echoReplies: 0, refused: 0, udpFlowsRefused: 0, tcp: zeroCounters() };
}

/** Adds `terminator`'s counters to `into`. */
function addTerminator(into: TerminatorCounts, terminator: Terminator): void {
  into.packetsIn += terminator.stats.packetsIn;
  into.echoReplies += terminator.stats.echoReplies;
  into.refused += terminator.stats.refused;
  into.udpFlowsRefused += terminator.udp.stats.flowsRefused;
  if (terminator.tcpCounters) addCounters(into.tcp, terminator.tcpCounters);
}

/** What the connector does now: the node's status and the terminators' totals. */
export type ConnectorStatus = NodeStatus & {
  terminator: TerminatorTotals;
  /** The kernel mode's counters, when it runs. */
  kernel?: KernelForwarderStats;
};

/** A running connector. */
export class Connector {
  /** Sessions refused by the access list. */
  denied = 0;
  readonly node: Node;
  /** Limits shared by every session. */
  readonly limits: ConnectorLimits;
  #options: ConnectorOptions;
  readonly #services: Map<string, ServedService>;
  readonly #terminators = new Set<Terminator>();
  /** The counters of terminators whose sessions ended, so the totals never go back. */
  readonly #ended = zeroTerminatorCounts();
  #kernel: KernelForwarder | undefined;
  /** Refused agents: debug lines, and a summary at info once a minute. */
  readonly #refusals = new RefusalLog(["ztna", "connector"]);

  private constructor(options: ConnectorOptions) {
    this.#options = options;
    this.limits = new ConnectorLimits(options.limits);
    this.#services = new Map(
      servicesOf(options).map((service) => [service.name, {
        allow: service.allow,
        targets: new Map(service.forward.map((target) => [target.port, target])),
      }]),
    );
    this.node = new Node({
      identity: options.identity,
      relay: options.relay,
      relayName: options.relayName,
      role: "connector",
      bind: options.bind,
      relayOnly: options.relayOnly,
      sessionLimits: options.sessionLimits,
      acceptAgent: (agent, service) => this.#acceptAgent(agent, service),
      admit: (connection, session) => this.#decide(connection, session),
      onAdmitted: (session, connection) => this.#serve(session, connection),
    });
    this.node.link.onObserved((address) =>
      log.info("the relay sees this connector at {address}", { address })
    );
  }

  /**
   * Connects to the relay and registers every service; rejects with FatalRelayError if one
   * is refused (a RelayRequestError naming it when the certificate does not grant it).
   */
  static async start(options: ConnectorOptions): Promise<Connector> {
    const services = servicesOf(options);
    if (services.length === 0) throw new Error("a connector needs a service to publish");
    const connector = new Connector(options);
    try {
      if (options.kernel) {
        connector.#kernel = await KernelForwarder.start({
          ...options.kernel,
          services,
          maxSessions: options.sessionLimits?.maxSessions ?? DEFAULT_MAX_SESSIONS,
        });
      }
      await connector.node.start();
      for (const service of services) await connector.node.link.register(service.name);
    } catch (error) {
      await connector.close();
      throw error;
    }
    connector.limits.checkOpenFileLimit(openFileLimit());
    for (const service of services) {
      log.info("publishing {service} -> {targets} (allow {allow})", {
        service: service.name,
        targets: service.forward.map(formatAddress).join(", "),
        allow: service.allow.join(", "),
      });
    }
    return connector;
  }

  /** The certificate file in use (a reload may name another one). */
  get certificateFile(): string {
    return this.#options.identity.certificateFile;
  }

  /** The names of the services published. */
  get serviceNames(): string[] {
    return [...this.#services.keys()];
  }

  /**
   * Counters of every session's terminator since start (those of ended sessions kept), with
   * the process's limits (open UDP flows and TCP connections, refusals, buffer budget,
   * descriptors that ran out).
   */
  terminatorStats(): TerminatorTotals {
    const out = { ...this.#ended, tcp: { ...this.#ended.tcp } };
    for (const terminator of this.#terminators) addTerminator(out, terminator);
    return { ...out, ...this.limits.stats() };
  }

  /** Reads the figures `status()` cannot read itself (the kernel mode's nftables counter). */
  async refreshStatus(): Promise<void> {
    await this.#kernel?.refresh();
  }

  /** What the connector does now, for its admin socket. */
  status(): ConnectorStatus {
    const kernel = this.#kernel
      ? { kernel: this.#kernel.stats(), tun: this.#kernel.tunStatus() }
      : {};
    return {
      ...this.node.status(this.serviceNames),
      terminator: this.terminatorStats(),
      ...kernel,
    };
  }

  /**
   * The access list of the service the relay names, applied when it announces a session:
   * null accepts, a reason refuses.
   */
  #acceptAgent(agent: string, service: string): string | null {
    const why = this.#refusal(agent, service);
    if (why === null) return null;
    this.denied++;
    this.#refusals.note("access-denied", agent, why);
    return why;
  }

  /** Why `agent` may not reach `service` here, or null if it may. */
  #refusal(agent: string, service: string): string | null {
    const served = this.#services.get(service);
    if (!served) return `${service} is not published here`;
    const allow = served.allow;
    return allow.includes("*") || allow.includes(agent) ? null : "not in the access list";
  }

  /**
   * The check once the handshake completed: the certificate must be the
   * agent the relay announced (and still be allowed). Null admits.
   */
  #decide(connection: Connection, session: Session | undefined): string | null {
    const grants = readGrants(connection.peerCertificate!);
    const why = grants.role !== "agent"
      ? "not an agent"
      : !session
      ? "no session announced by the relay"
      : session.peerName !== grants.name
      ? `the relay announced ${session.peerName}`
      : this.#refusal(grants.name, session.service);
    if (why !== null) {
      this.denied++;
      log.warn("refused a session from {name}: {why}", { name: grants.name, why });
    }
    return why;
  }

  /** Terminates an admitted session's packets with its service's forward targets. */
  #serve(session: Session, connection: Connection): void {
    // #decide admitted only sessions of a published service.
    const targets = this.#services.get(session.service)!.targets;
    const send = (packet: Uint8Array) => void connection.sendDatagram(packet);
    if (this.#kernel) {
      this.#serveKernel(this.#kernel, session, connection, targets, send);
      return;
    }
    const terminator = new Terminator(
      targets,
      send,
      this.#options.tcp?.(send, targets, this.limits) ?? null,
      this.limits,
    );
    this.#terminators.add(terminator);
    connection.onDatagram((packet) => terminator.receive(packet));
    log.info("session {id} from {agent} to {service} admitted", {
      id: session.id,
      agent: session.peerName,
      service: session.service,
    });
    connection.closed.then(() => {
      terminator.close();
      if (this.#terminators.delete(terminator)) addTerminator(this.#ended, terminator);
    });
  }

  /** Forwards an admitted session's packets through the kernel mode's TUN. */
  #serveKernel(
    kernel: KernelForwarder,
    session: Session,
    connection: Connection,
    targets: Map<number, SocketAddress>,
    send: (packet: Uint8Array) => void,
  ): void {
    const end = kernel.open(targets, send);
    if (!end) {
      log.warn("session {id}: the kernel mode's address pool is exhausted", { id: session.id });
      session.close("address pool exhausted");
      return;
    }
    connection.onDatagram((packet) => end.receive(packet));
    connection.closed.then(() => end.close());
    log.info("session {id} from {agent} to {service} admitted (kernel mode, {address})", {
      id: session.id,
      agent: session.peerName,
      service: session.service,
      address: end.address,
    });
  }

  /**
   * Reloads the identity and the services' access lists (SIGHUP). The certificate must
   * still grant every published service, and the services must be the same ones; new
   * sessions use the new files, live ones keep theirs, but live sessions of agents a new
   * list no longer allows are closed (an operator who removes an agent expects it cut off).
   * Throws naming the bad file or service, changing nothing. Resolves with what changed.
   */
  async reload(inputs: ConnectorReload): Promise<string[]> {
    const names = this.serviceNames;
    const services = "services" in inputs
      ? inputs.services
      : names.map((name) => ({ name, forward: [], allow: inputs.allow }));
    const given = services.map((service) => service.name);
    if (given.length !== names.length || !given.every((name) => this.#services.has(name))) {
      throw new Error(
        `a reload cannot change the services published (${names.join(", ")}; restart for ${
          given.join(", ")
        })`,
      );
    }
    const changes = await this.node.reloadIdentity(inputs.identity, names);
    this.#options = { ...this.#options, identity: inputs.identity };
    for (const service of services) {
      const served = this.#services.get(service.name)!;
      if (served.allow.join(",") !== service.allow.join(",")) {
        const list = names.length === 1 ? "access list" : `${service.name} access list`;
        changes.push(`${list}: ${service.allow.join(", ") || "(empty)"}`);
      }
      served.allow = service.allow;
    }
    for (const session of this.node.sessions.values()) {
      if (this.#refusal(session.peerName, session.service) === null) continue;
      log.info("closing session {id} of {agent}: no longer in {service}'s access list", {
        id: session.id,
        agent: session.peerName,
        service: session.service,
      });
      session.close("no longer in the access list");
    }
    return changes;
  }

  /** Closes sessions, the relay link and the socket. */
  async close(): Promise<void> {
    this.#refusals.close();
    for (const terminator of this.#terminators) terminator.close();
    this.limits.close();
    await this.node.close();
    await this.#kernel?.close();
  }
}
