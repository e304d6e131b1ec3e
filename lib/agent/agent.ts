/**
 * The agent: captures traffic for service IPs on a Linux TUN device and sends
 * each IP packet as a DATAGRAM of that service's end-to-end session, which
 * rides through the relay; replies are written back to the TUN. A session
 * that ends (its connector restarted, say) is re-opened with backoff.
 */
import { getLogger } from "@logtape/logtape";
import { parseIp } from "../packet/mod.ts";
import { formatIpAddress, parseIpAddress } from "../packet/mod.ts";
import type { SocketAddress } from "../net/address.ts";
import type { Connection } from "../quic/connection.ts";
import { Endpoint } from "../quic/endpoint.ts";
import { type CloseReason, describeClose } from "../quic/errors.ts";
import { SESSION_ACCESS_DENIED } from "../relay/constants.ts";
import {
  type NodeIdentity,
  relayClientConfig,
  sessionConfig,
  TUNNEL_MTU,
} from "../node/configs.ts";
import { FatalRelayError, RelayLink } from "../node/relay_link.ts";
import { serviceServerName } from "../pki/grants.ts";
import { TunDevice } from "../tun/mod.ts";

const log = getLogger(["ztna", "agent"]);

/** Shortest wait for the connector's verdict on this agent's certificate. */
const ADMISSION_WINDOW_MIN_MS = 150;

/** True for the connector's access-list refusal. */
function isAccessDenied(reason: CloseReason): boolean {
  return reason.by === "peer" && reason.isApplication && reason.code === SESSION_ACCESS_DENIED;
}

/** A service the agent reaches, at the IP the agent's host uses for it. */
export interface AgentService {
  name: string;
  ip: string;
}

/** Options of an agent. */
export interface AgentOptions {
  identity: NodeIdentity;
  relay: SocketAddress;
  relayName: string;
  tun: string;
  /** The TUN's own addresses (sources of the captured packets). */
  tunAddresses: string[];
  services: AgentService[];
}

/** Counters of an agent. */
export interface AgentStats {
  packetsToSessions: number;
  packetsFromSessions: number;
  /** Packets for no service IP, or dropped because the session's queue was full or it was down. */
  dropped: number;
}

/** A running agent. */
export class Agent {
  readonly stats: AgentStats = { packetsToSessions: 0, packetsFromSessions: 0, dropped: 0 };
  readonly link: RelayLink;
  readonly #endpoint: Endpoint;
  readonly #configs;
  readonly #tun: TunDevice;
  /** The live session of each service IP (by its text form). */
  readonly #sessions = new Map<string, Connection | null>();
  #closing = false;
  #reading: Promise<void> | undefined;

  private constructor(options: AgentOptions, tun: TunDevice) {
    this.#tun = tun;
    this.#configs = {
      relay: relayClientConfig(options.identity),
      session: sessionConfig(options.identity),
    };
    this.#endpoint = Endpoint.bind({ address: { hostname: "0.0.0.0", port: 0 } });
    this.link = new RelayLink({
      endpoint: this.#endpoint,
      relay: options.relay,
      serverName: options.relayName,
      config: this.#configs.relay,
      role: "agent",
      onObserved: (address) => log.info("the relay sees this agent at {address}", { address }),
    });
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
    });
    let agent: Agent;
    try {
      agent = new Agent(options, tun);
    } catch (error) {
      await tun.close();
      throw error;
    }
    try {
      await agent.link.start();
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

  /** Round-trip time of each service's session, for status output. */
  sessionRtts(): Record<string, number | undefined> {
    const out: Record<string, number | undefined> = {};
    for (const [ip, session] of this.#sessions) {
      out[ip] = session?.isClosed === false
        ? session.pathStats().find((p) => p.active)?.rttMs
        : undefined;
    }
    return out;
  }

  async #openSession(service: AgentService): Promise<void> {
    const key = formatIpAddress(parseIpAddress(service.ip));
    const assignment = await this.link.openSession(service.name);
    const peer = this.link.attachSession(assignment);
    const session = this.#endpoint.connect({
      peer: peer.address,
      serverName: serviceServerName(service.name),
      config: this.#configs.session,
    });
    await session.established;
    await this.#awaitAdmission(session, assignment.peer);
    session.ondatagram = (packet) => {
      this.stats.packetsFromSessions++;
      try {
        this.#tun.write(packet);
      } catch (error) {
        log.debug("TUN write failed: {error}", { error: String(error) });
      }
    };
    this.#sessions.set(key, session);
    log.info("session to {service} ({ip}) through {connector} is up", {
      service: service.name,
      ip: service.ip,
      connector: assignment.peer,
    });
    session.closed.then((reason) => {
      if (this.#sessions.get(key) === session) this.#sessions.set(key, null);
      this.link.closeSession(assignment.session, "session ended");
      if (this.#closing) return;
      if (isAccessDenied(reason)) {
        log.error("connector {connector} refused this agent (access denied); not retrying", {
          connector: assignment.peer,
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

  /**
   * The connector checks this agent's certificate against its access list one
   * flight after our side of the handshake completed (TLS 1.3): wait a few
   * round trips for a refusal before calling the session up.
   */
  async #awaitAdmission(session: Connection, connector: string): Promise<void> {
    const rtt = session.pathStats().find((p) => p.active)?.rttMs ?? 100;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const admitted = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), Math.max(ADMISSION_WINDOW_MIN_MS, 4 * rtt));
    });
    const reason = await Promise.race([session.closed, admitted]);
    clearTimeout(timer);
    if (reason && isAccessDenied(reason)) {
      throw new FatalRelayError(`connector ${connector} refused this agent: access denied`);
    }
    if (reason) throw new Error(`session to ${connector} ended at once: ${describeClose(reason)}`);
  }

  async #reopen(service: AgentService): Promise<void> {
    for (let attempt = 0; !this.#closing; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 250 * 2 ** attempt)));
      try {
        await this.#openSession(service);
        return;
      } catch (error) {
        log.info("re-opening the session to {service} failed: {error}", {
          service: service.name,
          error: String(error),
        });
        if (error instanceof FatalRelayError && !/no connector publishes/.test(error.message)) {
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
    if (session && session.sendDatagram(packet)) {
      this.stats.packetsToSessions++;
    } else {
      this.stats.dropped++;
    }
  }

  /** Closes the sessions, the relay link and the TUN device. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const session of this.#sessions.values()) session?.close(0, "agent shutting down");
    this.link.close();
    await this.#tun.close();
    await this.#reading?.catch(() => {});
    await this.#endpoint.close();
    this.#configs.relay.free();
    this.#configs.session.free();
  }
}
