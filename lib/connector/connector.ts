/**
 * The connector: publishes services through the relay without root. It dials
 * the relay from its one UDP socket, registers the services its certificate
 * grants, accepts the end-to-end sessions the relay matches it with (checking
 * the agent's certificate against the access list), and terminates their IP
 * packets in user space (see Terminator).
 */
import { getLogger } from "@logtape/logtape";
import type { SocketAddress } from "../net/address.ts";
import type { Connection } from "../quic/connection.ts";
import { Endpoint } from "../quic/endpoint.ts";
import { type NodeIdentity, relayClientConfig, sessionConfig } from "../node/configs.ts";
import { RelayLink, type SessionAssignment } from "../node/relay_link.ts";
import { readGrants } from "../pki/grants.ts";
import { formatAddress } from "../net/address.ts";
import { SESSION_ACCESS_DENIED } from "../relay/constants.ts";
import { type TcpHandler, Terminator } from "./terminator.ts";

const log = getLogger(["ztna", "connector"]);

/** Options of a connector. */
export interface ConnectorOptions {
  identity: NodeIdentity;
  relay: SocketAddress;
  relayName: string;
  /** The service published. */
  service: string;
  /** Forward targets; a packet to service port P goes to the target with port P. */
  forward: SocketAddress[];
  /** Agent names allowed in; `*` allows every agent the CA issued. */
  allow: string[];
  /** Makes the TCP handler of a session (the userspace TCP stack); none: TCP is refused. */
  tcp?: (send: (packet: Uint8Array) => void, targets: Map<number, SocketAddress>) => TcpHandler;
}

/** A running connector. */
export class Connector {
  /** Sessions refused by the access list. */
  denied = 0;
  readonly link: RelayLink;
  readonly #options: ConnectorOptions;
  readonly #endpoint: Endpoint;
  readonly #configs;
  readonly #targets: Map<number, SocketAddress>;
  /** Sessions the relay announced, by the virtual address their packets come from. */
  readonly #assignments = new Map<string, SessionAssignment>();
  readonly #terminators = new Set<Terminator>();

  private constructor(options: ConnectorOptions) {
    this.#options = options;
    this.#targets = new Map(options.forward.map((target) => [target.port, target]));
    this.#configs = {
      relay: relayClientConfig(options.identity),
      session: sessionConfig(options.identity),
    };
    this.#endpoint = Endpoint.bind({
      address: { hostname: "0.0.0.0", port: 0 },
      server: { config: this.#configs.session, onConnection: (c) => this.#admit(c) },
    });
    this.link = new RelayLink({
      endpoint: this.#endpoint,
      relay: options.relay,
      serverName: options.relayName,
      config: this.#configs.relay,
      role: "connector",
      onObserved: (address) => log.info("the relay sees this connector at {address}", { address }),
      onSession: (session) => {
        const peer = this.link.attachSession(session);
        this.#assignments.set(formatAddress(peer.address), session);
      },
    });
  }

  /** Connects to the relay and registers the service; rejects with FatalRelayError if refused. */
  static async start(options: ConnectorOptions): Promise<Connector> {
    const connector = new Connector(options);
    try {
      await connector.link.start();
      await connector.link.register(options.service);
    } catch (error) {
      await connector.close();
      throw error;
    }
    log.info("publishing {service} -> {targets}", {
      service: options.service,
      targets: options.forward.map(formatAddress).join(", "),
    });
    return connector;
  }

  /** Counters of every live session's terminator, summed. */
  terminatorStats(): { packetsIn: number; echoReplies: number; refused: number; udpFlows: number } {
    const out = { packetsIn: 0, echoReplies: 0, refused: 0, udpFlows: 0 };
    for (const t of this.#terminators) {
      out.packetsIn += t.stats.packetsIn;
      out.echoReplies += t.stats.echoReplies;
      out.refused += t.stats.refused;
      out.udpFlows += t.udp.size;
    }
    return out;
  }

  #admit(connection: Connection): void {
    const grants = readGrants(connection.peerCertificate!);
    const assignment = this.#assignments.get(formatAddress(connection.initialPeer));
    const allowed = this.#options.allow.includes("*") || this.#options.allow.includes(grants.name);
    if (grants.role !== "agent" || !assignment || assignment.peer !== grants.name || !allowed) {
      this.denied++;
      log.warn("refused a session from {name}: {why}", {
        name: grants.name,
        why: grants.role !== "agent"
          ? "not an agent"
          : !assignment
          ? "no session announced by the relay"
          : assignment.peer !== grants.name
          ? `the relay announced ${assignment.peer}`
          : "not in the access list",
      });
      connection.close(SESSION_ACCESS_DENIED, "access denied");
      return;
    }
    const send = (packet: Uint8Array) => void connection.sendDatagram(packet);
    const terminator = new Terminator(
      this.#targets,
      send,
      this.#options.tcp?.(send, this.#targets) ?? null,
    );
    this.#terminators.add(terminator);
    connection.ondatagram = (packet) => terminator.receive(packet);
    log.info("session {id} from {agent} admitted", { id: assignment.session, agent: grants.name });
    connection.closed.then(() => {
      terminator.close();
      this.#terminators.delete(terminator);
    });
  }

  /** Closes sessions, the relay link and the socket. */
  async close(): Promise<void> {
    for (const terminator of this.#terminators) terminator.close();
    this.link.close();
    await this.#endpoint.close();
    this.#configs.relay.free();
    this.#configs.session.free();
  }
}
