/**
 * Nodes made by hand for relay tests: an Endpoint and a relay connection with
 * a valid identity, whose control stream a test speaks with MessageStream or
 * writes raw, so that it can misbehave in ways a real node never does.
 */
import assert from "node:assert/strict";
import type { SocketAddress } from "../../lib/net/address.ts";
import { MessageStream } from "../../lib/control/message_stream.ts";
import { type Message, PROTOCOL_VERSION } from "../../lib/control/messages.ts";
import { type NodeIdentity, relayClientConfig } from "../../lib/node/configs.ts";
import type { QuicConfig } from "../../lib/quic/config.ts";
import type { Connection } from "../../lib/quic/connection.ts";
import { Endpoint } from "../../lib/quic/endpoint.ts";
import type { CloseReason } from "../../lib/quic/errors.ts";
import type { QuicStream } from "../../lib/quic/stream.ts";
import { RELAY_NAME } from "./nodes.ts";

const LOOPBACK: SocketAddress = { hostname: "127.0.0.1", port: 0 };

/** `promise`, or a rejection naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A node made by hand: its own endpoint and relay connection, a control stream
 * spoken with MessageStream or written raw.
 */
export class HandMadeNode {
  readonly endpoint = Endpoint.bind({ address: LOOPBACK });
  readonly connection: Connection;
  readonly control: MessageStream;
  readonly stream: QuicStream;
  /** DATAGRAMs the relay sent it. */
  datagramsReceived = 0;
  readonly #config: QuicConfig;
  readonly #ownsConfig: boolean;

  private constructor(relay: SocketAddress, id: NodeIdentity, config?: QuicConfig) {
    this.#config = config ?? relayClientConfig(id);
    this.#ownsConfig = config === undefined;
    this.connection = this.endpoint.connect({
      peer: relay,
      serverName: RELAY_NAME,
      config: this.#config,
    });
    this.connection.onDatagram(() => this.datagramsReceived++);
    this.stream = this.connection.openStream();
    this.control = new MessageStream(this.stream);
  }

  /** Connects (handshake done, no hello yet), with `config` instead of a node's if given. */
  static async connect(
    relay: SocketAddress,
    id: NodeIdentity,
    config?: QuicConfig,
  ): Promise<HandMadeNode> {
    const node = new HandMadeNode(relay, id, config);
    await node.connection.established;
    return node;
  }

  /** Says hello and returns the relay's welcome. */
  async hello(role: "agent" | "connector"): Promise<Extract<Message, { type: "welcome" }>> {
    await this.control.send({ type: "hello", version: PROTOCOL_VERSION, role });
    const welcome = await this.control.receive();
    assert.equal(welcome?.type, "welcome", `answer to hello: ${JSON.stringify(welcome)}`);
    return welcome as Extract<Message, { type: "welcome" }>;
  }

  /** Writes a raw frame: a 4-byte big-endian length, then `body`. */
  async sendFrame(body: Uint8Array, length = body.length): Promise<void> {
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, length);
    frame.set(body, 4);
    await this.stream.write(frame);
  }

  /** How the relay connection ended; fails after `timeoutMs`. */
  async closedWithin(timeoutMs = 5_000): Promise<CloseReason> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        this.connection.closed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`the relay did not close the connection in ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the connection, the endpoint and its own configuration. */
  async close(): Promise<void> {
    this.connection.close(0, "test done");
    await this.endpoint.close();
    if (this.#ownsConfig) this.#config.free();
  }
}

/**
 * Reads a node's control stream continuously into a queue, so that a test
 * can wait for the next message or for a quiet spell without a read left
 * pending (an abandoned `receive()` would swallow the message after it).
 */
export class Inbox {
  readonly #queue: Message[] = [];
  #wake: (() => void) | null = null;
  #ended = false;

  constructor(control: MessageStream) {
    void (async () => {
      try {
        for (let m = await control.receive(); m; m = await control.receive()) {
          this.#queue.push(m);
          this.#wake?.();
        }
      } catch {
        // The stream failed: the inbox ends as if it closed.
      }
      this.#ended = true;
      this.#wake?.();
    })();
  }

  /** The next message; fails after `ms` (or at the stream's end). */
  async next(ms = 1_000): Promise<Message> {
    const message = await this.#take(ms);
    if (!message) throw new Error(`no message within ${ms} ms`);
    return message;
  }

  /** Every message until none comes for `ms`. */
  async quiet(ms = 300): Promise<Message[]> {
    const out: Message[] = [];
    for (let m = await this.#take(ms); m; m = await this.#take(ms)) out.push(m);
    return out;
  }

  async #take(ms: number): Promise<Message | undefined> {
    if (this.#queue.length === 0 && !this.#ended) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
      this.#wake = null;
    }
    return this.#queue.shift();
  }
}
