/**
 * The relay: nodes (connectors and agents) dial out to it over QUIC with
 * mutual TLS. It tells each node the address it observes (QUIC address
 * discovery), lets connectors register the services their certificates grant,
 * matches an agent's session request with a connector, and forwards the
 * session's packets between the two as opaque DATAGRAMs. It never reads them,
 * and forwards nothing for an unauthenticated or unmatched node.
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, type SocketAddress } from "../net/address.ts";
import { QuicConfig } from "../quic/config.ts";
import type { Connection } from "../quic/connection.ts";
import { Endpoint } from "../quic/endpoint.ts";
import { type Grants, readGrants } from "../pki/grants.ts";
import { MessageStream } from "../control/message_stream.ts";
import { type Message, PROTOCOL_VERSION } from "../control/messages.ts";
import {
  RELAY_ALPN,
  RELAY_IDLE_TIMEOUT_MS,
  RELAY_MAX_UDP_PAYLOAD,
  RelayCloseCode,
} from "./constants.ts";
import { SESSION_ID_BYTES, sessionIdBytes, sessionIdHex } from "./session_id.ts";
import { TokenBucket } from "./token_bucket.ts";
import { RefusalLog } from "./refusal_log.ts";

const log = getLogger(["ztna", "relay"]);

/** Default bytes of control messages a node may leave unread before it is disconnected. */
export const MAX_CONTROL_BACKLOG = 1 << 20;
/** Default time a node may leave its control stream unread while messages wait for it. */
export const CONTROL_STALL_MS = 10_000;
/** How long a node has to say hello after its handshake. */
const HELLO_TIMEOUT_MS = 5_000;
export { RelayCloseCode };

/** Options of a relay. */
export interface RelayOptions {
  /** Address to listen on (`0.0.0.0:4433`, `[::]:4433`). */
  listen: SocketAddress;
  /** The relay's certificate chain and key (PEM files). */
  certificateFile: string;
  privateKeyFile: string;
  /** The organisation's CA certificate (PEM): only nodes it issued get in. */
  caFile: string;
  /** Per-node limit on forwarded DATAGRAMs (packets per second; burst is one second's worth). */
  packetsPerSecond?: number;
  /** Bytes of control messages a node may leave unread before it is disconnected (default 1 MiB). */
  maxControlBacklog?: number;
  /** How long a node may leave its control stream unread, with messages waiting (default 10 s). */
  controlStallMs?: number;
}

/** Counters of a relay. */
export interface RelayStats {
  nodesConnected: number;
  nodesRefused: number;
  sessionsOpened: number;
  datagramsForwarded: number;
  bytesForwarded: number;
  /** DATAGRAMs dropped: unknown session, sender not in it, peer gone, or rate limited. */
  droppedNoSession: number;
  droppedRateLimited: number;
  droppedPeerQueueFull: number;
  /** Nodes disconnected because they left their control stream unread. */
  nodesNotReading: number;
}

/** A connected, authenticated node. */
interface Node {
  connection: Connection;
  grants: Grants;
  control: MessageStream;
  observed: string;
  services: Set<string>;
  sessions: Set<string>;
  bucket: TokenBucket;
}

/** One agent-connector pair. */
interface Session {
  id: string;
  idBytes: Uint8Array;
  service: string;
  agent: Node;
  connector: Node;
  counters: SessionCounters;
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
}

/** A running relay. */
export class Relay {
  /** Counters. */
  readonly stats: RelayStats = {
    nodesConnected: 0,
    nodesRefused: 0,
    sessionsOpened: 0,
    datagramsForwarded: 0,
    bytesForwarded: 0,
    droppedNoSession: 0,
    droppedRateLimited: 0,
    droppedPeerQueueFull: 0,
    nodesNotReading: 0,
  };
  readonly #endpoint: Endpoint;
  readonly #config: QuicConfig;
  readonly #packetsPerSecond: number;
  readonly #maxControlBacklog: number;
  /** Refused requests: debug lines, and a summary at info once a minute. */
  readonly #refusals = new RefusalLog();
  readonly #controlStallMs: number;
  readonly #nodes = new Set<Node>();
  /** Connectors publishing each service. */
  readonly #publishers = new Map<string, Set<Node>>();
  readonly #sessions = new Map<string, Session>();

  private constructor(options: RelayOptions) {
    this.#packetsPerSecond = options.packetsPerSecond ?? 200_000;
    this.#maxControlBacklog = options.maxControlBacklog ?? MAX_CONTROL_BACKLOG;
    this.#controlStallMs = options.controlStallMs ?? CONTROL_STALL_MS;
    this.#config = new QuicConfig({
      alpn: [RELAY_ALPN],
      certificateChainFile: options.certificateFile,
      privateKeyFile: options.privateKeyFile,
      caFile: options.caFile,
      verifyPeer: true,
      idleTimeoutMs: RELAY_IDLE_TIMEOUT_MS,
      maxSendUdpPayload: RELAY_MAX_UDP_PAYLOAD,
      datagrams: { receiveQueue: 4096, sendQueue: 4096 },
    });
    try {
      this.#endpoint = Endpoint.bind({
        address: options.listen,
        server: { config: this.#config, onConnection: (c) => this.#admit(c) },
      });
    } catch (error) {
      this.#config.free();
      throw error;
    }
  }

  /** Starts a relay listening on `options.listen`. */
  static start(options: RelayOptions): Relay {
    return new Relay(options);
  }

  /** The address it listens on. */
  get address(): SocketAddress {
    return this.#endpoint.localAddress;
  }

  /** Its endpoint, for services that share the socket (the STUN responder). */
  get endpoint(): Endpoint {
    return this.#endpoint;
  }

  /** Every live session with what the relay forwarded for it. */
  sessionSnapshots(): SessionSnapshot[] {
    return [...this.#sessions.values()].map((session) => ({
      id: session.id,
      service: session.service,
      agent: session.agent.grants.name,
      connector: session.connector.grants.name,
      ...session.counters,
    }));
  }

  /** Live nodes, sessions and registrations, for status output. */
  snapshot(): { nodes: number; sessions: number; services: Record<string, number> } {
    const services: Record<string, number> = {};
    for (const [service, nodes] of this.#publishers) services[service] = nodes.size;
    return { nodes: this.#nodes.size, sessions: this.#sessions.size, services };
  }

  #admit(connection: Connection): void {
    const grants = readGrants(connection.peerCertificate!);
    let observed = formatAddress(connection.initialPeer);
    // Until its hello, a node is in no session: count its DATAGRAMs as unmatched, and
    // follow its address so the welcome reports the current one.
    const stopCounting = connection.onDatagram(() => void this.stats.droppedNoSession++);
    const stopFollowing = connection.onPath((event) => {
      if (event.type === "peer-migrated") observed = formatAddress(event.peer);
    });
    if (grants.role !== "agent" && grants.role !== "connector") {
      this.stats.nodesRefused++;
      log.warn("refused {peer} ({name}): its certificate grants no agent or connector role", {
        peer: observed,
        name: grants.name,
      });
      connection.close(RelayCloseCode.Forbidden, "certificate grants no agent or connector role");
      return;
    }
    // The deadline holds until a complete, valid hello: a byte on the stream is not enough.
    const hello = setTimeout(() => {
      connection.close(RelayCloseCode.Protocol, "no hello on the control stream");
    }, HELLO_TIMEOUT_MS);
    connection.closed.then(() => clearTimeout(hello));
    let controlStarted = false;
    connection.onStream((stream) => {
      if (controlStarted) {
        connection.close(RelayCloseCode.Protocol, "only one control stream is allowed");
        return;
      }
      controlStarted = true;
      const node: Node = {
        connection,
        grants,
        control: new MessageStream(stream),
        observed,
        services: new Set(),
        sessions: new Set(),
        bucket: new TokenBucket(this.#packetsPerSecond, this.#packetsPerSecond),
      };
      const admitted = () => {
        clearTimeout(hello);
        stopCounting();
        stopFollowing();
      };
      this.#serveControl(node, admitted).catch((error) => {
        if (connection.isClosed) return;
        log.info("{name}: control stream failed: {error}", {
          name: grants.name,
          error: String(error),
        });
        connection.close(RelayCloseCode.Protocol, String((error as Error).message ?? error));
      });
    });
  }

  /** Serves a node's control stream; `admitted` runs once its hello is accepted. */
  async #serveControl(node: Node, admitted: () => void): Promise<void> {
    const { connection, grants } = node;
    const first = await node.control.receive();
    if (first?.type !== "hello") {
      throw new Error(`expected hello, got ${first ? first.type : "end of stream"}`);
    }
    if (first.version !== PROTOCOL_VERSION) {
      await this.#error(node, "unsupported-version", `relay speaks version ${PROTOCOL_VERSION}`);
      connection.close(RelayCloseCode.Protocol, "unsupported protocol version");
      return;
    }
    if (first.role !== grants.role) {
      await this.#error(
        node,
        "forbidden",
        `certificate grants role ${grants.role}, not ${first.role}`,
      );
      connection.close(RelayCloseCode.Forbidden, "role not granted");
      return;
    }
    admitted();
    this.#nodes.add(node);
    this.stats.nodesConnected++;
    log.info("{role} {name} connected from {peer}", {
      role: grants.role,
      name: grants.name,
      peer: node.observed,
    });
    connection.onDatagram((data) => this.#forward(node, data));
    connection.onPath((event) => {
      if (event.type === "peer-migrated") this.#moved(node, formatAddress(event.peer));
    });
    connection.closed.then(() => this.#forget(node));
    this.#post(node, {
      type: "welcome",
      version: PROTOCOL_VERSION,
      node: grants.name,
      observed: node.observed,
    });
    for (
      let message = await node.control.receive();
      message;
      message = await node.control.receive()
    ) {
      this.#handle(node, message);
    }
  }

  /**
   * QAD: tells the node when the address we observe for it changes (NAT
   * rebinding), and the other end of each of its sessions.
   */
  #moved(node: Node, observed: string): void {
    node.observed = observed;
    this.#post(node, { type: "observed-address", observed });
    for (const id of node.sessions) {
      const session = this.#sessions.get(id);
      const other = session?.agent === node ? session.connector : session?.agent;
      if (other) this.#post(other, { type: "peer-address", session: id, observed });
    }
  }

  #handle(node: Node, message: Message): void {
    switch (message.type) {
      case "register":
        if (node.grants.role !== "connector" || !node.grants.services.includes(message.service)) {
          this.#error(
            node,
            "forbidden",
            `${node.grants.name} may not publish ${message.service}`,
            { id: message.id, service: message.service },
          );
          return;
        }
        node.services.add(message.service);
        if (!this.#publishers.has(message.service)) {
          this.#publishers.set(message.service, new Set());
        }
        this.#publishers.get(message.service)!.add(node);
        log.info("{name} publishes {service}", {
          name: node.grants.name,
          service: message.service,
        });
        this.#post(node, { type: "registered", id: message.id, service: message.service });
        return;
      case "open-session":
        this.#openSession(node, message.id, message.service, message.resume);
        return;
      case "close-session": {
        const session = this.#sessions.get(message.session);
        if (!session || (session.agent !== node && session.connector !== node)) return;
        this.#closeSession(session, message.reason, node);
        return;
      }
      default:
        this.#error(node, "bad-message", `a node may not send "${message.type}"`);
    }
  }

  #openSession(
    agent: Node,
    id: number,
    service: string,
    resume: string | undefined,
  ): void {
    if (agent.grants.role !== "agent") {
      this.#error(agent, "forbidden", "only agents open sessions", { id, service });
      return;
    }
    const connectors = [...(this.#publishers.get(service) ?? [])];
    if (connectors.length === 0) {
      this.#error(agent, "unknown-service", `no connector publishes ${service}`, {
        id,
        service,
      });
      return;
    }
    // The least busy connector; a resumed session keeps its ID so its QUIC session lives on.
    const connector = connectors.sort((a, b) => a.sessions.size - b.sessions.size)[0];
    const idBytes = resume && !this.#sessions.has(resume)
      ? sessionIdBytes(resume)
      : crypto.getRandomValues(new Uint8Array(SESSION_ID_BYTES));
    const session: Session = {
      id: sessionIdHex(idBytes),
      idBytes,
      service,
      agent,
      connector,
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
    this.stats.sessionsOpened++;
    log.info("session {id}: {agent} -> {service} at {connector}", {
      id: session.id,
      agent: agent.grants.name,
      service,
      connector: connector.grants.name,
    });
    this.#post(connector, {
      type: "session",
      session: session.id,
      service,
      peer: agent.grants.name,
      peerObserved: agent.observed,
      side: "connector",
    });
    this.#post(agent, {
      type: "session",
      id,
      session: session.id,
      service,
      peer: connector.grants.name,
      peerObserved: connector.observed,
      side: "agent",
    });
  }

  #forward(from: Node, data: Uint8Array): void {
    if (data.length <= SESSION_ID_BYTES) {
      this.stats.droppedNoSession++;
      return;
    }
    const session = this.#sessions.get(sessionIdHex(data.subarray(0, SESSION_ID_BYTES)));
    const to = session?.agent === from
      ? session.connector
      : session?.connector === from
      ? session.agent
      : undefined;
    if (!to) {
      this.stats.droppedNoSession++;
      return;
    }
    if (!from.bucket.take()) {
      this.stats.droppedRateLimited++;
      return;
    }
    if (!to.connection.sendDatagram(data)) {
      this.stats.droppedPeerQueueFull++;
      return;
    }
    this.stats.datagramsForwarded++;
    this.stats.bytesForwarded += data.length;
    const counters = session!.counters;
    if (from === session!.agent) {
      counters.agentToConnector++;
      counters.agentToConnectorBytes += data.length;
    } else {
      counters.connectorToAgent++;
      counters.connectorToAgentBytes += data.length;
    }
  }

  #closeSession(session: Session, reason: string, by?: Node): void {
    const { counters } = session;
    log.info("session {id} closed ({reason}); relayed {toConnector} + {toAgent} DATAGRAMs", {
      id: session.id,
      reason,
      toConnector: counters.agentToConnector,
      toAgent: counters.connectorToAgent,
    });
    this.#sessions.delete(session.id);
    session.agent.sessions.delete(session.id);
    session.connector.sessions.delete(session.id);
    for (const node of [session.agent, session.connector]) {
      if (node === by || node.connection.isClosed) continue;
      this.#post(node, { type: "close-session", session: session.id, reason });
    }
  }

  #forget(node: Node): void {
    this.#nodes.delete(node);
    for (const service of node.services) this.#publishers.get(service)?.delete(node);
    for (const id of node.sessions) {
      const session = this.#sessions.get(id);
      if (session) this.#closeSession(session, `${node.grants.name} left the relay`, node);
    }
    log.info("{name} disconnected", { name: node.grants.name });
  }

  #error(
    node: Node,
    code: Extract<Message, { type: "error" }>["code"],
    message: string,
    extra: { id?: number; service?: string; session?: string } = {},
  ): Promise<void> {
    this.#refusals.note(code, node.grants.name, message);
    return this.#post(node, { type: "error", code, message, ...extra });
  }

  /**
   * Queues a message for `node` without waiting for it to be written: one
   * node's full control stream never holds up the handling of another's. A
   * node that lets more than `maxControlBacklog` bytes pile up, or takes none
   * of them for `controlStallMs`, is not reading its control stream: it is
   * disconnected. The promise (which never rejects)
   * settles once the message is written, for a caller about to close.
   */
  #post(node: Node, message: Message): Promise<void> {
    if (node.connection.isClosed) return Promise.resolve();
    const control = node.control;
    if (
      control.pendingBytes > this.#maxControlBacklog || control.stalledMs > this.#controlStallMs
    ) {
      this.stats.nodesNotReading++;
      log.warn("{name} does not read its control stream ({bytes} bytes waiting): disconnected", {
        name: node.grants.name,
        bytes: control.pendingBytes,
      });
      node.connection.close(RelayCloseCode.Protocol, "control stream not read");
      return Promise.resolve();
    }
    return node.control.send(message).catch(() => {});
  }

  /** Refused requests since the start, by error code. */
  get refusals(): Readonly<Record<string, number>> {
    return this.#refusals.totals;
  }

  /** Closes every node connection and the socket. */
  async close(): Promise<void> {
    this.#refusals.close();
    await this.#endpoint.close();
    this.#config.free();
  }
}
