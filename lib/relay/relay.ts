/**
 * The relay: nodes (connectors and agents) dial out to it over QUIC with
 * mutual TLS. It tells each node the address it observes (QUIC address
 * discovery), lets connectors register the services their certificates grant,
 * and brokers sessions (see SessionBroker): it forwards a session's packets
 * between agent and connector as opaque DATAGRAMs once the connector accepted
 * it, never reads them, and forwards nothing for an unauthenticated or
 * unmatched node. Each identity holds one connection; every table is bounded.
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, type SocketAddress } from "../net/address.ts";
import { QuicConfig } from "../quic/config.ts";
import type { Connection } from "../quic/connection.ts";
import { Endpoint } from "../quic/endpoint.ts";
import { readGrants } from "../pki/grants.ts";
import { MessageStream } from "../control/message_stream.ts";
import { type Message, PROTOCOL_VERSION } from "../control/messages.ts";
import {
  RELAY_ALPN,
  RELAY_IDLE_TIMEOUT_MS,
  RELAY_MAX_UDP_PAYLOAD,
  RelayCloseCode,
} from "./constants.ts";
import { TokenBucket } from "./token_bucket.ts";
import type { RelayNode } from "./relay_node.ts";
import {
  ADMISSION_TIMEOUT_MS,
  type BrokerStats,
  MAX_SESSIONS,
  MAX_SESSIONS_PER_AGENT,
  SessionBroker,
  type SessionCounters,
  type SessionSnapshot,
} from "./session_broker.ts";
import { RefusalLog } from "../events/refusal_log.ts";
import {
  type CheckedIdentity,
  checkIdentityFiles,
  identityChanges,
  type IdentityFiles,
  readIdentitySnapshot,
} from "../identity/identity_check.ts";

const log = getLogger(["ztna", "relay"]);

/** Default bytes of control messages a node may leave unread before it is disconnected. */
export const MAX_CONTROL_BACKLOG = 1 << 20;
/** Default time a node may leave its control stream unread while messages wait for it. */
export const CONTROL_STALL_MS = 10_000;
/** Default bound on connected nodes (each identity holds at most one connection). */
export const MAX_NODES = 10_000;
/** Default rate of a node's requests (`register`, `open-session`) per second; the burst is 4 s worth. */
export const REQUESTS_PER_SECOND = 50;
/** How long a node has to say hello after its handshake. */
const HELLO_TIMEOUT_MS = 5_000;
export { RelayCloseCode };
export type { SessionCounters, SessionSnapshot };

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
  /** Connected nodes at most (default 10,000); more are refused until some leave. */
  maxNodes?: number;
  /** Live sessions at most (default 100,000). */
  maxSessions?: number;
  /** Live sessions of one agent at most (default 256). */
  maxSessionsPerAgent?: number;
  /** How long a connector has to accept or refuse a session (default 5 s). */
  admissionTimeoutMs?: number;
  /** A node's requests per second (default 50, burst 200); more are answered `rate-limited`. */
  requestsPerSecond?: number;
  /** QUIC handshakes in progress at most, in all and per source address (see ServerOptions). */
  maxHandshakes?: number;
  maxHandshakesPerAddress?: number;
  /** A handshake not done in this time is dropped (default 5 s). */
  handshakeTimeoutMs?: number;
}

/** The relay's server configuration: its identity, and only clients the CA issued. */
function relayServerConfig(files: IdentityFiles): QuicConfig {
  return new QuicConfig({
    alpn: [RELAY_ALPN],
    certificateChainFile: files.certificateFile,
    privateKeyFile: files.privateKeyFile,
    caFile: files.caFile,
    verifyPeer: true,
    idleTimeoutMs: RELAY_IDLE_TIMEOUT_MS,
    maxSendUdpPayload: RELAY_MAX_UDP_PAYLOAD,
    datagrams: { receiveQueue: 4096, sendQueue: 4096 },
  });
}

/** Counters of a relay. */
export interface RelayStats extends BrokerStats {
  nodesConnected: number;
  nodesRefused: number;
  /** Connections closed because a newer one of the same identity arrived. */
  nodesReplaced: number;
  /** Connections refused because the relay held `maxNodes`. */
  nodesRefusedFull: number;
  /** Nodes disconnected because they left their control stream unread. */
  nodesNotReading: number;
}

/** A running relay. */
export class Relay {
  /** Counters. */
  get stats(): Readonly<RelayStats> {
    return { ...this.#stats, ...this.#broker.stats };
  }
  readonly #stats = {
    nodesConnected: 0,
    nodesRefused: 0,
    nodesReplaced: 0,
    nodesRefusedFull: 0,
    nodesNotReading: 0,
  };
  readonly #endpoint: Endpoint;
  /** Configuration of new connections; a reload replaces it. */
  #config: QuicConfig;
  /** The identity files as last loaded, to say what a reload changed. */
  #identity: Promise<CheckedIdentity | null>;
  readonly #packetsPerSecond: number;
  readonly #maxControlBacklog: number;
  /** Refused requests: debug lines, and a summary at info once a minute. */
  readonly #refusals = new RefusalLog(["ztna", "relay"]);
  readonly #controlStallMs: number;
  readonly #maxNodes: number;
  readonly #requestsPerSecond: number;
  /** Nodes that said hello, by their connection. */
  readonly #nodes = new Map<Connection, RelayNode>();
  /** Each identity's connection (handshake done, hello or not): a newer one replaces it. */
  readonly #byIdentity = new Map<string, Connection>();
  /** Connectors publishing each service. */
  readonly #publishers = new Map<string, Set<RelayNode>>();
  readonly #broker: SessionBroker;

  private constructor(options: RelayOptions) {
    this.#packetsPerSecond = options.packetsPerSecond ?? 200_000;
    this.#maxControlBacklog = options.maxControlBacklog ?? MAX_CONTROL_BACKLOG;
    this.#controlStallMs = options.controlStallMs ?? CONTROL_STALL_MS;
    this.#maxNodes = options.maxNodes ?? MAX_NODES;
    this.#requestsPerSecond = options.requestsPerSecond ?? REQUESTS_PER_SECOND;
    this.#broker = new SessionBroker({
      post: (node, message) => void this.#post(node, message),
      refuse: (node, code, message, extra) => void this.#error(node, code, message, extra),
      publishers: (service) => this.#publishers.get(service) ?? [],
    }, {
      maxSessions: options.maxSessions ?? MAX_SESSIONS,
      maxSessionsPerAgent: options.maxSessionsPerAgent ?? MAX_SESSIONS_PER_AGENT,
      admissionTimeoutMs: options.admissionTimeoutMs ?? ADMISSION_TIMEOUT_MS,
    });
    this.#config = relayServerConfig(options);
    this.#identity = readIdentitySnapshot(options);
    try {
      this.#endpoint = Endpoint.bind({
        address: options.listen,
        server: {
          config: this.#config,
          onConnection: (c) => this.#admit(c),
          maxHandshakes: options.maxHandshakes,
          maxHandshakesPerAddress: options.maxHandshakesPerAddress,
          handshakeTimeoutMs: options.handshakeTimeoutMs,
        },
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
    return this.#broker.snapshots();
  }

  /** Live nodes, sessions and registrations, for status output. */
  snapshot(): { nodes: number; sessions: number; services: Record<string, number> } {
    const services: Record<string, number> = {};
    for (const [service, nodes] of this.#publishers) services[service] = nodes.size;
    return { nodes: this.#nodes.size, sessions: this.#broker.size, services };
  }

  /** Connected nodes by role, and the connectors publishing each service (status, metrics). */
  roster(): { roles: { agent: number; connector: number }; connectors: Record<string, string[]> } {
    const roles = { agent: 0, connector: 0 };
    for (const node of this.#nodes.values()) roles[node.grants.role as keyof typeof roles]++;
    const connectors: Record<string, string[]> = {};
    for (const [service, nodes] of this.#publishers) {
      connectors[service] = [...nodes].map((node) => node.grants.name).sort();
    }
    return { roles, connectors };
  }

  #admit(connection: Connection): void {
    const grants = readGrants(connection.peerCertificate!);
    let observed = formatAddress(connection.initialPeer);
    // Until its hello, a node is in no session: count its DATAGRAMs as unmatched, and
    // follow its address so the welcome reports the current one.
    const stopCounting = connection.onDatagram(() => void this.#broker.stats.droppedNoSession++);
    const stopFollowing = connection.onPath((event) => {
      if (event.type === "peer-migrated") observed = formatAddress(event.peer);
    });
    if (grants.role !== "agent" && grants.role !== "connector") {
      this.#stats.nodesRefused++;
      log.warn("refused {peer} ({name}): its certificate grants no agent or connector role", {
        peer: observed,
        name: grants.name,
      });
      connection.close(RelayCloseCode.Forbidden, "certificate grants no agent or connector role");
      return;
    }
    if (!this.#claimIdentity(grants.name, connection, observed)) return;
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
      const node: RelayNode = {
        connection,
        grants,
        control: new MessageStream(stream),
        observed,
        services: new Set(),
        sessions: new Set(),
        bucket: new TokenBucket(this.#packetsPerSecond, this.#packetsPerSecond),
        requests: new TokenBucket(this.#requestsPerSecond, 4 * this.#requestsPerSecond),
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
  async #serveControl(node: RelayNode, admitted: () => void): Promise<void> {
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
    this.#nodes.set(connection, node);
    this.#stats.nodesConnected++;
    log.info("{role} {name} connected from {peer}", {
      role: grants.role,
      name: grants.name,
      peer: node.observed,
    });
    connection.onDatagram((data) => this.#broker.forward(node, data));
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
   * Takes the identity's one connection slot for `connection`: an older
   * connection of the same identity is closed (a node that reconnected, or
   * restarted, replaces its stale self); past `maxNodes` it is refused.
   */
  #claimIdentity(name: string, connection: Connection, peer: string): boolean {
    const previous = this.#byIdentity.get(name);
    if (!previous && this.#byIdentity.size >= this.#maxNodes) {
      this.#stats.nodesRefusedFull++;
      this.#refusals.note("relay-full", name, `${this.#maxNodes} nodes connected`);
      connection.close(RelayCloseCode.Busy, "relay full");
      return false;
    }
    if (previous && !previous.isClosed) {
      this.#stats.nodesReplaced++;
      log.info("{name}: a new connection from {peer} replaces the previous one", { name, peer });
      previous.close(RelayCloseCode.Replaced, "replaced by a newer connection of this identity");
      // Its sessions end now, not when its close has drained.
      const node = this.#nodes.get(previous);
      if (node) this.#forget(node);
    }
    this.#byIdentity.set(name, connection);
    connection.closed.then(() => {
      if (this.#byIdentity.get(name) === connection) this.#byIdentity.delete(name);
    });
    return true;
  }

  /**
   * QAD: tells the node when the address we observe for it changes (NAT
   * rebinding); the other end of each of its sessions hears that it moved.
   */
  #moved(node: RelayNode, observed: string): void {
    node.observed = observed;
    this.#post(node, { type: "observed-address", observed });
    this.#broker.nodeMoved(node);
  }

  #handle(node: RelayNode, message: Message): void {
    if (
      (message.type === "register" || message.type === "open-session") && !node.requests.take()
    ) {
      this.#error(node, "rate-limited", "too many requests; slow down", {
        id: message.id,
        service: message.service,
      });
      return;
    }
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
        this.#broker.open(node, message.id, message.service, message.resume);
        return;
      case "accept-session":
        this.#broker.accept(node, message.session, message.resumes);
        return;
      case "refuse-session":
        this.#broker.refuse(node, message.session, message.code, message.message);
        return;
      case "close-session":
        this.#broker.closeSession(node, message.session, message.reason);
        return;
      default:
        this.#error(node, "bad-message", `a node may not send "${message.type}"`);
    }
  }

  #forget(node: RelayNode): void {
    if (this.#nodes.get(node.connection) !== node) return;
    this.#nodes.delete(node.connection);
    for (const service of node.services) {
      const publishers = this.#publishers.get(service);
      publishers?.delete(node);
      if (publishers?.size === 0) this.#publishers.delete(service);
    }
    this.#broker.nodeLeft(node);
    log.info("{name} disconnected", { name: node.grants.name });
  }

  #error(
    node: RelayNode,
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
  #post(node: RelayNode, message: Message): Promise<void> {
    // A node being closed (cut off here, or draining) gets nothing more, and is counted once.
    if (node.connection.isClosing) return Promise.resolve();
    const control = node.control;
    if (
      control.pendingBytes > this.#maxControlBacklog || control.stalledMs > this.#controlStallMs
    ) {
      this.#stats.nodesNotReading++;
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

  /**
   * Reloads the relay's certificate, key and CA (SIGHUP): checks the files,
   * then new connections use them; connected nodes keep their connections.
   * Throws naming the bad file, keeping the old identity. Resolves with what
   * changed, for the reload's log line.
   */
  async reload(files: IdentityFiles): Promise<string[]> {
    const checked = await checkIdentityFiles(files, { role: "relay" });
    const config = relayServerConfig(files);
    this.#endpoint.replaceServerConfig(config);
    // Safe with connections made from it alive (see lib/node/configs.ts freeNodeConfigs).
    this.#config.free();
    this.#config = config;
    const changes = identityChanges(await this.#identity, checked);
    this.#identity = Promise.resolve(checked);
    return changes;
  }

  /** Closes every node connection and the socket. */
  async close(): Promise<void> {
    this.#refusals.close();
    this.#broker.close();
    await this.#endpoint.close();
    this.#config.free();
  }
}
