/**
 * A node's link to the relay: dials it from the node's endpoint (its one UDP
 * socket), speaks the control protocol (requests carry an ID and a timeout),
 * learns the address the relay observes (QAD), and carries relay DATAGRAMs for
 * the node's sessions. When the relay connection drops it reconnects with
 * capped exponential backoff and registers its services again; pending
 * requests fail at once. Refusals that retrying cannot fix (certificates,
 * grants) are fatal. The relay may be given by host name: each attempt
 * resolves it afresh (so a relay that moved is found again) and tries its
 * addresses in turn, skipping those the node's socket cannot reach. Sessions
 * themselves live in lib/session/.
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, type SocketAddress } from "../net/address.ts";
import {
  formatHostPort,
  HostNotFoundError,
  type HostPort,
  NoUsableAddressError,
  reachableAddresses,
  type Resolver,
  systemResolver,
} from "../net/resolve.ts";
import type { QuicConfig } from "../quic/config.ts";
import type { Connection } from "../quic/connection.ts";
import type { Endpoint } from "../quic/endpoint.ts";
import { type CloseReason, ConnectionClosedError, describeClose } from "../quic/errors.ts";
import { Listeners, type Unsubscribe } from "../events/listeners.ts";
import { MessageStream } from "../control/message_stream.ts";
import {
  type ErrorCode,
  type Message,
  PROTOCOL_VERSION,
  type Request,
  type Role,
} from "../control/messages.ts";
import { RelayCloseCode } from "../relay/constants.ts";
import { readGrants } from "../pki/grants.ts";

const log = getLogger(["ztna", "relay-link"]);

/** A session assigned by the relay. */
export type SessionAssignment = Extract<Message, { type: "session" }>;

/** Backoff between reconnection attempts: 250 ms doubling up to this cap. */
const MAX_BACKOFF_MS = 5_000;
/** Pause before reconnecting after a newer connection of this identity replaced ours. */
const REPLACED_BACKOFF_MS = 30_000;
/** How long one attempt waits for the relay's handshake (per address). */
export const HANDSHAKE_TIMEOUT_MS = 5_000;
/** How long a request waits for its answer. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** Keep-alive period, well within the relay's idle timeout and common NAT UDP timeouts. */
const KEEPALIVE_MS = 10_000;

/** An error retrying cannot fix: a refused certificate, a missing grant, an unknown service. */
export class FatalRelayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FatalRelayError";
  }
}

/** The relay answered a request with an `error` message. */
export class RelayRequestError extends FatalRelayError {
  /** The relay's error code: `unknown-service` may change when a connector comes. */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(`relay: ${message}`);
    this.name = "RelayRequestError";
    this.code = code;
  }
}

/** A request failed because the link to the relay was lost (or closed) before its answer. */
export class RelayLinkLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RelayLinkLostError";
  }
}

/** Options of a relay link. */
export interface RelayLinkOptions {
  endpoint: Endpoint;
  /** The relay: an IP address, or a host name resolved on every (re)connection attempt. */
  relay: HostPort;
  /** Resolves the relay's host name (default: the system's resolver, /etc/hosts included). */
  resolver?: Resolver;
  /** Name in the relay's certificate. */
  serverName: string;
  /** Client configuration: relay ALPN, this node's identity, the organisation CA. */
  config: QuicConfig;
  role: Exclude<Role, "relay">;
  /** How long a request waits for its answer (default REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  /** How long the handshake with one of the relay's addresses may take (default HANDSHAKE_TIMEOUT_MS). */
  handshakeTimeoutMs?: number;
}

/** A request the relay did not answer in time. */
export class RelayRequestTimeoutError extends Error {
  constructor(type: string, ms: number) {
    super(`relay did not answer ${type} within ${ms} ms`);
    this.name = "RelayRequestTimeoutError";
  }
}

interface Pending {
  resolve: (message: Message) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** The link from a node to its relay. */
export class RelayLink {
  /** The address the relay observes for this node, once known. */
  observed = "";
  /** Times the link was re-established after a loss. */
  reconnects = 0;
  readonly #options: RelayLinkOptions;
  /** The relay address of the current (or last) connection; null before the first. */
  #address: SocketAddress | null = null;
  /** Whether the relay's name ever resolved: before that, a failure to resolve it is fatal. */
  #resolved = false;
  #connection: Connection | null = null;
  #control: MessageStream | null = null;
  #closing = false;
  readonly #services = new Set<string>();
  readonly #pending = new Map<number, Pending>();
  #nextRequest = 1;
  #keepalive: ReturnType<typeof setInterval> | undefined;
  #connected: Promise<void> = Promise.resolve();
  #lastNudge = -Infinity;
  readonly #events = {
    observed: new Listeners<string>(),
    session: new Listeners<SessionAssignment>(),
    sessionClosed: new Listeners<{ session: string; reason: string }>(),
    peerMoved: new Listeners<string>(),
    datagram: new Listeners<Uint8Array>(),
    disconnected: new Listeners<string>(),
    reconnected: new Listeners<void>(),
  };

  constructor(options: RelayLinkOptions) {
    this.#options = options;
  }

  /** Calls `listener` when the relay reports a new address for this node (QAD). */
  onObserved(listener: (address: string) => void): Unsubscribe {
    return this.#events.observed.add(listener);
  }

  /** Calls `listener` for each session the relay announces unasked (a connector's new agent). */
  onSession(listener: (session: SessionAssignment) => void): Unsubscribe {
    return this.#events.session.add(listener);
  }

  /** Calls `listener` when the relay ends a session. */
  onSessionClosed(listener: (event: { session: string; reason: string }) => void): Unsubscribe {
    return this.#events.sessionClosed.add(listener);
  }

  /** Calls `listener` with a session's ID when the relay observes a new address for its other end. */
  onPeerMoved(listener: (session: string) => void): Unsubscribe {
    return this.#events.peerMoved.add(listener);
  }

  /** Calls `listener` with each DATAGRAM the relay sends (valid only during the call). */
  onDatagram(listener: (data: Uint8Array) => void): Unsubscribe {
    return this.#events.datagram.add(listener);
  }

  /** Calls `listener` with the reason when the link is lost, before reconnecting. */
  onDisconnected(listener: (reason: string) => void): Unsubscribe {
    return this.#events.disconnected.add(listener);
  }

  /** Calls `listener` once the link is back after a loss and services are registered again. */
  onReconnected(listener: () => void): Unsubscribe {
    return this.#events.reconnected.add(listener);
  }

  /**
   * Connects and says hello, retrying with backoff while the relay is
   * unreachable; rejects with FatalRelayError if the relay refuses this node.
   */
  async start(): Promise<void> {
    this.#connected = this.#establish(false);
    await this.#connected;
    this.#keepalive = setInterval(() => this.#connection?.ping(), KEEPALIVE_MS);
  }

  /** Publishes a service (connectors); rejects with RelayRequestError if the certificate does not grant it. */
  async register(service: string): Promise<void> {
    this.#services.add(service);
    await this.#connected;
    await this.#ask({ type: "register", id: 0, service });
  }

  /**
   * Asks for a session to a service (agents), or to continue session `resume`
   * under a new ID; rejects with RelayRequestError (`unknown-service`,
   * `access-denied`, ...), RelayLinkLostError or a timeout. The answer's
   * `resumes` is set only if the connector continued `resume`.
   */
  async openSession(service: string, resume?: string): Promise<SessionAssignment> {
    await this.#connected;
    const answer = await this.#ask({ type: "open-session", id: 0, service, resume });
    if (answer.type !== "session") {
      throw new Error(`relay answered open-session with ${answer.type}`);
    }
    return answer;
  }

  /** Tells the relay a session ended (best effort). */
  closeSession(session: string, reason: string): void {
    this.#tell({ type: "close-session", session, reason });
  }

  /** Connector: accepts an announced session (continuing session `resumes`, if set). */
  acceptSession(session: string, resumes?: string): void {
    this.#tell({ type: "accept-session", session, ...(resumes ? { resumes } : {}) });
  }

  /** Connector: refuses an announced session; the agent hears `code` at once. */
  refuseSession(session: string, code: "access-denied" | "limit-reached", message: string): void {
    this.#tell({ type: "refuse-session", session, code, message });
  }

  /** Sends a message that is no request (best effort: lost with the link). */
  #tell(message: Message): void {
    void this.#control?.send(message).catch(() => {});
  }

  /**
   * Sends a PING to the relay now (at most once a second), so that it sees
   * this node's current address if a NAT on the way changed it.
   */
  nudge(): void {
    const now = performance.now();
    if (now - this.#lastNudge < 1_000) return;
    this.#lastNudge = now;
    this.#connection?.ping();
  }

  /** Sends a DATAGRAM on the relay connection; false if there is none now or its queue is full. */
  sendDatagram(data: Uint8Array): boolean {
    return this.#connection?.sendDatagram(data) ?? false;
  }

  /** Waits until the link is up (it may be reconnecting). */
  get ready(): Promise<void> {
    return this.#connected;
  }

  /** True while the relay connection is up. */
  get isConnected(): boolean {
    return this.#connection !== null && !this.#connection.isClosed;
  }

  /** The relay's IP address and port of the current (or last) connection; null before the first. */
  get relayAddress(): SocketAddress | null {
    return this.#address;
  }

  /** The relay's IP address and port of the current (or last) connection, or as given. */
  get relayLabel(): string {
    return this.#address ? formatAddress(this.#address) : formatHostPort(this.#options.relay);
  }

  /** The relay connection's round-trip time, if connected. */
  get rttMs(): number | undefined {
    return this.#connection?.activePath()?.rttMs;
  }

  /** Sends a request with a fresh ID on the current control stream and waits for its answer. */
  #ask(request: Request): Promise<Message> {
    const control = this.#control;
    if (!control) return Promise.reject(new RelayLinkLostError("not connected to the relay"));
    const id = this.#nextRequest++;
    const ms = this.#options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    const answer = new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new RelayRequestTimeoutError(request.type, ms));
      }, ms);
      this.#pending.set(id, { resolve, reject, timer });
    });
    control.send({ ...request, id }).catch((error) => this.#fail(id, error));
    return answer;
  }

  #fail(id: number, error: Error): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    pending.reject(error);
  }

  #failAll(error: Error): void {
    for (const id of [...this.#pending.keys()]) this.#fail(id, error);
  }

  /**
   * Resolves the relay (afresh: it may have moved) and tries each address the
   * socket can reach in turn; a fatal refusal ends the tries, otherwise the
   * last address's error is thrown.
   */
  async #connect(): Promise<void> {
    const { endpoint, relay } = this.#options;
    const addresses = await reachableAddresses(
      relay,
      endpoint.localAddress,
      endpoint.family,
      this.#options.resolver ?? systemResolver,
    );
    this.#resolved = true;
    let failure: unknown;
    for (const [index, address] of addresses.entries()) {
      if (this.#closing) return;
      try {
        await this.#connectTo(address);
        return;
      } catch (error) {
        if (error instanceof FatalRelayError) throw error;
        failure = error;
        if (index + 1 < addresses.length) {
          log.info("relay {relay} at {address}: {error}; trying its next address", {
            relay: formatHostPort(relay),
            address: formatAddress(address),
            error: String(error),
          });
        }
      }
    }
    throw failure;
  }

  /** Connects to one of the relay's addresses and says hello. */
  async #connectTo(relay: SocketAddress): Promise<void> {
    const { endpoint, serverName, config, role } = this.#options;
    const handshakeTimeoutMs = this.#options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    this.#address = relay;
    const connection = endpoint.connect({ peer: relay, serverName, config });
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        connection.established,
        new Promise((_, reject) => {
          timer = setTimeout(() => {
            connection.close(0, "handshake timeout");
            reject(
              new Error(
                `relay ${formatAddress(relay)} did not answer within ${handshakeTimeoutMs} ms`,
              ),
            );
          }, handshakeTimeoutMs);
        }),
      ]);
    } catch (error) {
      const close = error instanceof ConnectionClosedError ? error.close : null;
      if (close && !close.isApplication && close.code >= 0x100 && close.code <= 0x1ff) {
        throw new FatalRelayError(
          `TLS handshake with relay ${formatAddress(relay)} failed: ${(error as Error).message}`,
        );
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
    // A certificate the CA issued for a connector or an agent, under the name dialled, is no relay.
    const relayRole = readGrants(connection.peerCertificate!).role;
    if (relayRole !== "relay") {
      connection.close(RelayCloseCode.Forbidden, "not a relay certificate");
      throw new FatalRelayError(
        `${formatAddress(relay)} presented a certificate for ${serverName} that grants ` +
          `${relayRole === null ? "no role" : `role ${relayRole}`}, not relay: refusing it`,
      );
    }
    const control = new MessageStream(connection.openStream());
    connection.onDatagram((data) => this.#events.datagram.emit(data));
    await control.send({ type: "hello", version: PROTOCOL_VERSION, role });
    let welcome: Message | null;
    try {
      welcome = await control.receive();
    } catch (error) {
      throw await this.#refusal(connection, error);
    }
    if (welcome?.type === "error") {
      throw new FatalRelayError(`relay refused this node: ${welcome.message}`);
    }
    if (welcome?.type !== "welcome") throw await this.#refusal(connection, "no welcome");
    this.#connection = connection;
    this.#control = control;
    this.#observe(welcome.observed);
    log.info("connected to relay {relay} as {node}; it sees us at {observed}", {
      relay: formatAddress(relay),
      node: welcome.node,
      observed: welcome.observed,
    });
    void this.#readControl(connection, control);
    connection.closed.then((reason) => this.#lost(connection, reason));
  }

  /** The error for a relay connection that ended before the welcome: fatal if the relay refused us. */
  async #refusal(connection: Connection, cause: unknown): Promise<Error> {
    const reason = await connection.closed;
    const text = describeClose(reason);
    const refused = reason.isApplication
      ? reason.code === RelayCloseCode.Forbidden
      : reason.code >= 0x100 && reason.code <= 0x1ff;
    return refused
      ? new FatalRelayError(`relay refused this node: ${text}`)
      : new Error(`relay connection ended: ${text} (${cause})`);
  }

  #observe(address: string): void {
    if (address === this.observed) return;
    this.observed = address;
    this.#events.observed.emit(address);
  }

  async #readControl(connection: Connection, control: MessageStream): Promise<void> {
    try {
      for (let message = await control.receive(); message; message = await control.receive()) {
        this.#onMessage(message);
      }
    } catch (error) {
      if (this.#closing || connection.isClosed) return;
      log.warn("relay control stream failed: {error}", { error: String(error) });
      connection.close(RelayCloseCode.Protocol, "control stream failed");
    }
  }

  #onMessage(message: Message): void {
    switch (message.type) {
      case "observed-address":
        this.#observe(message.observed);
        return;
      case "registered":
        this.#settle(message.id, message);
        return;
      case "session":
        if (message.id === undefined || !this.#settle(message.id, message)) {
          this.#events.session.emit(message);
        }
        return;
      case "close-session":
        this.#events.sessionClosed.emit({ session: message.session, reason: message.reason });
        return;
      case "peer-moved":
        this.#events.peerMoved.emit(message.session);
        return;
      case "error":
        if (message.id !== undefined && this.#pending.has(message.id)) {
          this.#fail(message.id, new RelayRequestError(message.code, message.message));
        } else {
          log.warn("relay error: {message}", { message: message.message });
        }
        return;
      default:
        log.debug("ignoring a {type} message from the relay", { type: message.type });
    }
  }

  #settle(id: number, message: Message): boolean {
    const pending = this.#pending.get(id);
    if (!pending) return false;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(message);
    return true;
  }

  /**
   * The relay connection ended: fail what waits, reconnect (unless closing)
   * and restore services. A connection the relay replaced with a newer one of
   * this identity means another node holds our certificate: say so, and wait
   * longer before taking the identity back.
   */
  #lost(connection: Connection, close: CloseReason): void {
    if (this.#connection !== connection || this.#closing) return;
    const reason = describeClose(close);
    this.#connection = null;
    this.#control = null;
    this.#failAll(new RelayLinkLostError(`lost the relay (${reason})`));
    const replaced = close.by === "peer" && close.isApplication &&
      close.code === RelayCloseCode.Replaced;
    if (replaced) {
      log.error(
        "the relay took a newer connection of this identity: another node uses this " +
          "certificate (each node needs its own); reconnecting in {seconds} s",
        { seconds: REPLACED_BACKOFF_MS / 1000 },
      );
    } else {
      log.warn("lost the relay ({reason}); reconnecting", { reason });
    }
    this.#events.disconnected.emit(reason);
    this.#connected = this.#establish(true, replaced ? REPLACED_BACKOFF_MS : 0);
    this.#connected.catch(() => {});
  }

  /**
   * Connects, retrying transient failures with capped exponential backoff (and
   * jitter); after a loss, registers the services again.
   */
  async #establish(afterLoss: boolean, firstPauseMs = 0): Promise<void> {
    for (let attempt = 0; !this.#closing; attempt++) {
      if (afterLoss || attempt > 0) {
        const backoff = attempt === 0 && firstPauseMs > 0
          ? firstPauseMs
          : Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt) * (0.8 + Math.random() * 0.4);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        if (this.#closing) return;
      }
      try {
        await this.#connect();
        if (!afterLoss) return;
        for (const service of this.#services) {
          await this.#ask({ type: "register", id: 0, service });
        }
      } catch (error) {
        if (error instanceof FatalRelayError) throw error;
        const unresolved = error instanceof HostNotFoundError ||
          error instanceof NoUsableAddressError;
        // A name that never resolved is a configuration error; one that did is a DNS outage.
        if (unresolved && !this.#resolved) throw new FatalRelayError(`relay: ${error.message}`);
        this.#drop("restoring the link failed");
        log.info("connecting to the relay failed: {error}; retrying", { error: String(error) });
        continue;
      }
      this.reconnects++;
      this.#events.reconnected.emit();
      return;
    }
  }

  /** Forgets the current relay connection without reconnecting (the caller retries). */
  #drop(reason: string): void {
    const connection = this.#connection;
    this.#connection = null;
    this.#control = null;
    connection?.close(RelayCloseCode.Protocol, reason);
  }

  /** Closes the relay connection for good; pending requests fail. */
  close(): void {
    this.#closing = true;
    clearInterval(this.#keepalive);
    this.#failAll(new RelayLinkLostError("relay link closed"));
    this.#connection?.close(0, "node shutting down");
  }
}
