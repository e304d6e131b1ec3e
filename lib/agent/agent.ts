/**
 * The agent: captures traffic for service IPs on a Linux TUN device and sends
 * each IP packet as a DATAGRAM of that service's end-to-end session, which
 * starts on the relay and goes direct when the NATs allow; replies are written
 * back to the TUN. A session that ends (its connector restarted, say) is
 * re-opened with backoff; its TCP connections are reset (see OpenTcpFlows)
 * and meanwhile packets to its service are answered with a RST or an ICMP
 * unreachable, so connections fail fast instead of hanging.
 */
import { getLogger } from "@logtape/logtape";
import { parseIp } from "../packet/mod.ts";
import { formatIpAddress, parseIpAddress } from "../packet/mod.ts";
import type { HostPort } from "../net/resolve.ts";
import { describeClose } from "../quic/errors.ts";
import { type NodeIdentity, TUNNEL_MTU } from "../node/configs.ts";
import { Node } from "../node/node.ts";
import { FatalRelayError, RelayRequestError } from "../node/relay_link.ts";
import { isAccessDenied, type Session } from "../session/session.ts";
import { type NodeStatus, tunStatus } from "../admin/node_status.ts";
import { TunDevice } from "../tun/mod.ts";
import { unreachableReply } from "./unreachable.ts";
import { OpenTcpFlows } from "./open_tcp_flows.ts";

const log = getLogger(["ztna", "agent"]);

/** A service the agent reaches, at the IP the agent's host uses for it. */
export interface AgentService {
  name: string;
  ip: string;
}

/** Options of an agent. */
export interface AgentOptions {
  identity: NodeIdentity;
  /** The relay: an IP address or a host name. */
  relay: HostPort;
  relayName: string;
  tun: string;
  /** The TUN's own addresses (sources of the captured packets). */
  tunAddresses: string[];
  services: AgentService[];
  /** Keep sessions on the relay. */
  relayOnly?: boolean;
  /**
   * TUN offloads (default on): the kernel hands over TSO super-packets, split
   * here into tunnel-MTU packets, and receives coalesced TCP segments (GRO).
   * Plain mode when off or when the kernel refuses them.
   */
  tunOffloads?: boolean;
}

/** Counters of an agent. */
export interface AgentStats {
  packetsToSessions: number;
  packetsFromSessions: number;
  /** Packets for no service IP, or dropped because the session's queue was full. */
  dropped: number;
  /** Packets to a service with no live session, answered with a RST or ICMP unreachable. */
  answeredUnreachable: number;
  /** TCP connections reset because their session ended. */
  tcpFlowsReset: number;
}

/** Re-opening a session: 250 ms doubling up to 1 s while the connector may be coming back... */
const REOPEN_BACKOFF_MS = 1_000;
/** ...and up to 5 s while a limit refuses it. */
const REOPEN_LIMITED_BACKOFF_MS = 5_000;
/** Refusals a later attempt may not meet. */
const RETRYABLE_CODES: readonly string[] = [
  "unknown-service",
  "unavailable",
  "limit-reached",
  "rate-limited",
];

/** A running agent. */
export class Agent {
  readonly stats: AgentStats = {
    packetsToSessions: 0,
    packetsFromSessions: 0,
    dropped: 0,
    answeredUnreachable: 0,
    tcpFlowsReset: 0,
  };
  readonly node: Node;
  readonly #tun: TunDevice;
  readonly #services: AgentService[];
  /** The live session of each service IP (by its text form). */
  readonly #sessions = new Map<string, Session | null>();
  readonly #tcpFlows = new OpenTcpFlows();
  #closing = false;
  #reading: Promise<void> | undefined;

  private constructor(options: AgentOptions, tun: TunDevice) {
    this.#tun = tun;
    this.#services = options.services;
    this.node = new Node({
      identity: options.identity,
      relay: options.relay,
      relayName: options.relayName,
      role: "agent",
      excludeInterfaces: [tun.name],
      relayOnly: options.relayOnly,
    });
    this.node.link.onObserved((address) =>
      log.info("the relay sees this agent at {address}", { address })
    );
  }

  /**
   * Creates the TUN device (routes for every service IP), connects to the relay
   * and opens a session per service. Rejects with FatalRelayError when the relay
   * refuses the identity or a service is unknown.
   */
  static async start(options: AgentOptions): Promise<Agent> {
    const tun = TunDevice.create({
      name: options.tun,
      mtu: TUNNEL_MTU,
      addresses: options.tunAddresses,
      routes: options.services.map((s) => `${s.ip}/${s.ip.includes(":") ? 128 : 32}`),
      offloads: options.tunOffloads ?? true,
    });
    let agent: Agent;
    try {
      agent = new Agent(options, tun);
    } catch (error) {
      await tun.close();
      throw error;
    }
    try {
      await agent.node.start();
      for (const service of options.services) {
        agent.#sessions.set(formatIpAddress(parseIpAddress(service.ip)), null);
        await agent.#openSession(service);
      }
    } catch (error) {
      await agent.close();
      throw error;
    }
    agent.#reading = tun.packets((packet) => agent.#fromTun(packet));
    agent.#reading.catch((error) => log.error("TUN reader failed: {error}", { error }));
    log.info("agent up on {tun}: {services}", {
      tun: tun.name,
      services: options.services.map((s) => `${s.name}=${s.ip}`).join(", "),
    });
    return agent;
  }

  /** What the agent does now, for its admin socket. */
  status(): NodeStatus {
    return { ...this.node.status(this.#services.map((s) => s.name)), tun: tunStatus(this.#tun) };
  }

  async #openSession(service: AgentService): Promise<void> {
    const key = formatIpAddress(parseIpAddress(service.ip));
    const session = await this.node.openSession(service.name);
    const connection = session.connection!;
    connection.onDatagram((packet) => {
      this.stats.packetsFromSessions++;
      // Queued (copied): the datagrams of one receive batch are written together, TCP coalesced.
      this.#tun.queue(packet, this.#onWriteError);
    });
    this.#sessions.set(key, session);
    log.info("session to {service} ({ip}) through {connector} is up", {
      service: service.name,
      ip: service.ip,
      connector: session.peerName,
    });
    connection.closed.then((reason) => {
      if (this.#sessions.get(key) === session) this.#sessions.set(key, null);
      // The connector's end of every TCP connection is gone with the session.
      for (const probe of this.#tcpFlows.probes(key)) {
        this.stats.tcpFlowsReset++;
        this.#write(probe);
      }
      this.node.link.closeSession(session.id, "session ended");
      if (this.#closing) return;
      if (isAccessDenied(reason)) {
        log.error("connector {connector} refused this agent (access denied); not retrying", {
          connector: session.peerName,
        });
        return;
      }
      log.warn("session to {service} ended ({reason}); re-opening", {
        service: service.name,
        reason: describeClose(reason),
      });
      void this.#reopen(service);
    });
  }

  async #reopen(service: AgentService): Promise<void> {
    let cap = REOPEN_BACKOFF_MS;
    for (let attempt = 0; !this.#closing; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(cap, 250 * 2 ** attempt)));
      if (this.#closing) return;
      try {
        await this.#openSession(service);
        return;
      } catch (error) {
        log.info("re-opening the session to {service} failed: {error}", {
          service: service.name,
          error: String(error),
        });
        const code = error instanceof RelayRequestError ? error.code : undefined;
        cap = code === "limit-reached" || code === "rate-limited"
          ? REOPEN_LIMITED_BACKOFF_MS
          : REOPEN_BACKOFF_MS;
        const retryable = code !== undefined && RETRYABLE_CODES.includes(code);
        if (error instanceof FatalRelayError && !retryable) {
          log.error("giving up on {service}: {error}", {
            service: service.name,
            error: error.message,
          });
          return;
        }
      }
    }
  }

  #fromTun(packet: Uint8Array): void {
    const ip = parseIp(packet);
    const session = typeof ip === "string"
      ? undefined
      : this.#sessions.get(formatIpAddress(ip.dst));
    if (session === undefined || typeof ip === "string") {
      this.stats.dropped++;
      return;
    }
    this.#tcpFlows.outgoing(packet);
    const connection = session?.connection;
    if (!connection || connection.isClosed) {
      const reply = unreachableReply(packet, ip);
      if (reply) {
        this.stats.answeredUnreachable++;
        this.#write(reply);
      } else {
        this.stats.dropped++;
      }
      return;
    }
    if (connection.sendDatagram(packet)) {
      this.stats.packetsToSessions++;
    } else {
      this.stats.dropped++;
    }
  }

  readonly #onWriteError = (error: Error) =>
    log.debug("TUN write failed: {error}", { error: String(error) });

  #write(packet: Uint8Array): void {
    try {
      this.#tun.write(packet);
    } catch (error) {
      this.#onWriteError(error as Error);
    }
  }

  /** Closes the sessions, the relay link and the TUN device. */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#tun.close();
    await this.#reading?.catch(() => {});
    await this.node.close();
  }
}
