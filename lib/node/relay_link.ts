/**
 * A node's link to the relay: dials it from the node's endpoint (its one UDP
 * socket), speaks the control protocol, learns the address the relay observes
 * (QAD), registers services or opens sessions, and carries session packets as
 * DATAGRAMs prefixed with the session ID. When the relay connection drops it
 * reconnects with capped exponential backoff and restores registrations and
 * sessions; refusals that retrying cannot fix (certificates, grants) are fatal.
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, type SocketAddress, virtualAddress } from "../net/address.ts";
import type { QuicConfig } from "../quic/config.ts";
import type { Connection } from "../quic/connection.ts";
import type { Endpoint, VirtualPeer } from "../quic/endpoint.ts";
import { ConnectionClosedError, describeClose } from "../quic/errors.ts";
import { MessageStream } from "../control/message_stream.ts";
import { type Message, PROTOCOL_VERSION, type Role } from "../control/messages.ts";
import { RelayCloseCode } from "../relay/relay.ts";
import { SESSION_ID_BYTES, sessionIdBytes, sessionIdHex } from "../relay/session_id.ts";

const log = getLogger(["ztna", "relay-link"]);

/** A session assigned by the relay. */
export type SessionAssignment = Extract<Message, { type: "session" }>;

/** Backoff between reconnection attempts: 250 ms doubling up to this cap. */
const MAX_BACKOFF_MS = 5_000;
/** How long one attempt waits for the relay's handshake. */
const HANDSHAKE_TIMEOUT_MS = 5_000;
/** How long an agent keeps trying to resume a session after the relay came back. */
const SESSION_RESUME_WINDOW_MS = 60_000;
/** Keep-alive period, well within the relay's idle timeout and common NAT UDP timeouts. */
const KEEPALIVE_MS = 10_000;

/** An error retrying cannot fix: a refused certificate, a missing grant, an unknown service. */
export class FatalRelayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FatalRelayError";
  }
}

/** Options of a relay link. */
export interface RelayLinkOptions {
  endpoint: Endpoint;
  relay: SocketAddress;
  /** Name in the relay's certificate. */
  serverName: string;
  /** Client configuration: relay ALPN, this node's identity, the organisation CA. */
  config: QuicConfig;
  role: Exclude<Role, "relay">;
  /** Called when the relay reports the address it observes for this node. */
  onObserved?: (address: string) => void;
  /** Called for each session the relay assigns (a connector's new agent). */
  onSession?: (session: SessionAssignment) => void;
  /** Called when the relay ends a session. */
  onSessionClosed?: (session: string, reason: string) => void;
  /** Called when the link is lost, with the reason, before reconnecting. */
  onDisconnected?: (reason: string) => void;
}

interface Pending {
  resolve: (message: Message) => void;
  reject: (error: Error) => void;
}

/** The link from a node to its relay. */
export class RelayLink {
  /** The address the relay observes for this node, once known. */
  observed = "";
  /** Times the link was re-established after a loss. */
  reconnects = 0;
  readonly #options: RelayLinkOptions;
  #connection: Connection | null = null;
  #control: MessageStream | null = null;
  #closing = false;
  readonly #services = new Set<string>();
  /** Sessions carried, by hex ID. */
  readonly #sessions = new Map<string, { peer: VirtualPeer; service: string; side: string }>();
  #nextVirtual = 1;
  /**
   * Virtual address index of every session seen: a session re-attached after the
   * relay lost it keeps its address, so the QUIC session inside sees the same path.
   */
  readonly #virtualIndex = new Map<string, number>();
  /** Requests waiting for their answer, by kind and service. */
  readonly #pending = new Map<string, Pending>();
  readonly #frame = new Uint8Array(65_536);
  #keepalive: ReturnType<typeof setInterval> | undefined;
  #connected: Promise<void> = Promise.resolve();

  constructor(options: RelayLinkOptions) {
    this.#options = options;
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

  /** Publishes a service (connectors); rejects with FatalRelayError if the certificate does not grant it. */
  async register(service: string): Promise<void> {
    this.#services.add(service);
    await this.#request(`registered:${service}`, { type: "register", service });
  }

  /** Asks for a session to a service (agents); rejects with FatalRelayError for an unknown service. */
  async openSession(service: string, resume?: string): Promise<SessionAssignment> {
    const answer = await this.#request(`session:${service}`, {
      type: "open-session",
      service,
      resume,
    });
    return answer as SessionAssignment;
  }

  /**
   * Carries a session's packets: returns a virtual peer on the node's endpoint
   * whose packets travel to the session's other end through the relay.
   */
  attachSession(session: SessionAssignment): VirtualPeer {
    const existing = this.#sessions.get(session.session);
    if (existing) return existing.peer;
    const id = sessionIdBytes(session.session);
    const frame = this.#frame;
    let index = this.#virtualIndex.get(session.session);
    if (index === undefined) this.#virtualIndex.set(session.session, index = this.#nextVirtual++);
    const peer = this.#options.endpoint.attachVirtualPeer(
      virtualAddress(index),
      (packet) => {
        frame.set(id);
        frame.set(packet, SESSION_ID_BYTES);
        this.#connection?.sendDatagram(frame.subarray(0, SESSION_ID_BYTES + packet.length));
      },
    );
    this.#sessions.set(session.session, { peer, service: session.service, side: session.side });
    return peer;
  }

  /** Stops carrying a session and tells the relay. */
  closeSession(session: string, reason: string): void {
    const entry = this.#sessions.get(session);
    if (!entry) return;
    entry.peer.detach();
    this.#sessions.delete(session);
    this.#virtualIndex.delete(session);
    void this.#control?.send({ type: "close-session", session, reason }).catch(() => {});
  }

  /** Waits until the link is up (it may be reconnecting). */
  get ready(): Promise<void> {
    return this.#connected;
  }

  /** The relay connection's round-trip time, if connected. */
  get rttMs(): number | undefined {
    return this.#connection?.isClosed === false
      ? this.#connection.pathStats().find((p) => p.active)?.rttMs
      : undefined;
  }

  async #request(key: string, message: Message): Promise<Message> {
    await this.#connected;
    return await this.#ask(key, message);
  }

  /** Sends a request on the current control stream and waits for its answer. */
  async #ask(key: string, message: Message): Promise<Message> {
    const answer = new Promise<Message>((resolve, reject) => {
      this.#pending.set(key, { resolve, reject });
    });
    await this.#control!.send(message);
    return answer;
  }

  async #connect(): Promise<void> {
    const { endpoint, relay, serverName, config, role } = this.#options;
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
                `relay ${formatAddress(relay)} did not answer within ${HANDSHAKE_TIMEOUT_MS} ms`,
              ),
            );
          }, HANDSHAKE_TIMEOUT_MS);
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
    this.#connection = connection;
    const control = new MessageStream(connection.openStream());
    this.#control = control;
    connection.ondatagram = (data) => this.#deliver(data);
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
    this.#observe(welcome.observed);
    log.info("connected to relay {relay} as {node}; it sees us at {observed}", {
      relay: formatAddress(relay),
      node: welcome.node,
      observed: welcome.observed,
    });
    void this.#readControl(connection, control);
    connection.closed.then((reason) => this.#lost(connection, describeClose(reason)));
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
    this.#options.onObserved?.(address);
  }

  #deliver(data: Uint8Array): void {
    if (data.length <= SESSION_ID_BYTES) return;
    const entry = this.#sessions.get(sessionIdHex(data));
    entry?.peer.receive(data.subarray(SESSION_ID_BYTES));
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
        this.#settle(`registered:${message.service}`, message);
        return;
      case "session":
        if (!this.#settle(`session:${message.service}`, message)) {
          this.#options.onSession?.(message);
        }
        return;
      case "close-session": {
        const entry = this.#sessions.get(message.session);
        entry?.peer.detach();
        this.#sessions.delete(message.session);
        this.#options.onSessionClosed?.(message.session, message.reason);
        return;
      }
      case "error": {
        const key = message.service
          ? [`registered:${message.service}`, `session:${message.service}`].find((k) =>
            this.#pending.has(k)
          )
          : undefined;
        const error = new FatalRelayError(`relay: ${message.message}`);
        if (key) {
          this.#pending.get(key)!.reject(error);
          this.#pending.delete(key);
        } else {
          log.warn("relay error: {message}", { message: message.message });
        }
        return;
      }
      default:
        log.warn("unexpected {type} message from the relay", { type: message.type });
    }
  }

  #settle(key: string, message: Message): boolean {
    const pending = this.#pending.get(key);
    if (!pending) return false;
    this.#pending.delete(key);
    pending.resolve(message);
    return true;
  }

  /** The relay connection ended: reconnect (unless closing) and restore what the node had. */
  #lost(connection: Connection, reason: string): void {
    if (this.#connection !== connection || this.#closing) return;
    this.#connection = null;
    this.#control = null;
    log.warn("lost the relay ({reason}); reconnecting", { reason });
    this.#options.onDisconnected?.(reason);
    this.#connected = this.#establish(true);
    this.#connected.catch(() => {});
  }

  /**
   * Connects, retrying transient failures with capped exponential backoff (and
   * jitter); after a loss, restores registrations and resumes sessions.
   */
  async #establish(afterLoss: boolean): Promise<void> {
    for (let attempt = 0; !this.#closing; attempt++) {
      if (afterLoss || attempt > 0) {
        const backoff = Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt) * (0.8 + Math.random() * 0.4);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        if (this.#closing) return;
      }
      try {
        await this.#connect();
      } catch (error) {
        if (error instanceof FatalRelayError) throw error;
        log.info("connecting to the relay failed: {error}; retrying", { error: String(error) });
        continue;
      }
      if (!afterLoss) return;
      this.reconnects++;
      for (const service of this.#services) {
        await this.#ask(`registered:${service}`, { type: "register", service });
      }
      for (const [id, entry] of this.#sessions) {
        if (entry.side === "agent") void this.#resume(id, entry.service);
      }
      return;
    }
  }

  /**
   * Re-opens an agent's session under its old ID, so the QUIC session inside
   * lives on. The connector may still be reconnecting itself, so an unknown
   * service is retried until the session would have timed out anyway.
   */
  async #resume(id: string, service: string): Promise<void> {
    const deadline = Date.now() + SESSION_RESUME_WINDOW_MS;
    while (!this.#closing && this.#sessions.has(id) && Date.now() < deadline) {
      try {
        await this.#request(`session:${service}`, { type: "open-session", service, resume: id });
        log.info("session {id} to {service} resumed", { id, service });
        return;
      } catch (error) {
        log.debug("resuming session {id}: {error}", { id, error: String(error) });
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }

  /** Closes the relay connection for good. */
  close(): void {
    this.#closing = true;
    clearInterval(this.#keepalive);
    for (const entry of this.#sessions.values()) entry.peer.detach();
    this.#sessions.clear();
    for (const pending of this.#pending.values()) pending.reject(new Error("relay link closed"));
    this.#pending.clear();
    this.#connection?.close(0, "node shutting down");
  }
}
