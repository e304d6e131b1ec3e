/**
 * JSON messages framed on a QUIC stream: a 4-byte big-endian length, then that
 * many bytes of UTF-8 JSON. Used by the relay control stream and by the
 * in-session signalling stream; each supplies its own validator.
 */
import type { QuicStream } from "../quic/stream.ts";
import { ProtocolError } from "./protocol_error.ts";

/**
 * Validates one decoded JSON value: returns the message, `undefined` for a
 * well-formed message of a type this build does not know (skipped, for forward
 * compatibility), or throws ProtocolError.
 */
export type MessageParser<T> = (value: unknown) => T | undefined;

/** Reads and writes framed JSON messages on one stream. */
export class FramedJsonStream<T> {
  /** Well-formed messages of unknown types that were skipped. */
  ignored = 0;
  readonly #stream: QuicStream;
  readonly #parse: MessageParser<T>;
  readonly #maxBytes: number;
  readonly #label: string;
  #buffer = new Uint8Array(0);
  #writing: Promise<void> = Promise.resolve();
  #pendingBytes = 0;
  #lastProgressAt = performance.now();

  /**
   * Frames messages on `stream`; messages over `maxBytes` are a ProtocolError.
   * `label` names the messages in errors ("control message").
   */
  constructor(stream: QuicStream, parse: MessageParser<T>, maxBytes: number, label: string) {
    this.#stream = stream;
    this.#parse = parse;
    this.#maxBytes = maxBytes;
    this.#label = label;
  }

  /** Sends a message; sends are written in call order. Rejects if the stream fails. */
  send(message: T): Promise<void> {
    const body = new TextEncoder().encode(JSON.stringify(message));
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length);
    frame.set(body, 4);
    if (this.#pendingBytes === 0) this.#lastProgressAt = performance.now();
    this.#pendingBytes += frame.length;
    this.#writing = this.#writing.then(() => this.#stream.write(frame)).finally(() => {
      this.#pendingBytes -= frame.length;
      this.#lastProgressAt = performance.now();
    });
    return this.#writing;
  }

  /** Bytes of messages sent but not yet taken by the stream (a peer that does not read). */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** How long (ms) messages have waited without one being taken; 0 when none waits. */
  get stalledMs(): number {
    return this.#pendingBytes === 0 ? 0 : performance.now() - this.#lastProgressAt;
  }

  /**
   * The next message of a known type, or null when the peer ended the stream;
   * a ProtocolError if one is malformed.
   */
  async receive(): Promise<T | null> {
    for (;;) {
      const value = await this.#nextValue();
      if (value === null) return null;
      const message = this.#parse(value.json);
      if (message !== undefined) return message;
      this.ignored++;
    }
  }

  async #nextValue(): Promise<{ json: unknown } | null> {
    for (;;) {
      if (this.#buffer.length >= 4) {
        const length = new DataView(this.#buffer.buffer, this.#buffer.byteOffset).getUint32(0);
        if (length > this.#maxBytes) {
          throw new ProtocolError(
            `${this.#label} of ${length} bytes exceeds ${this.#maxBytes}`,
          );
        }
        if (this.#buffer.length >= 4 + length) {
          const body = this.#buffer.subarray(4, 4 + length);
          this.#buffer = this.#buffer.subarray(4 + length);
          try {
            return { json: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body)) };
          } catch (error) {
            throw new ProtocolError(
              `${this.#label} is not JSON: ${(error as Error).message}`,
            );
          }
        }
      }
      const chunk = await this.#stream.read();
      if (chunk === null) {
        if (this.#buffer.length > 0) throw new ProtocolError(`stream ended mid-${this.#label}`);
        return null;
      }
      const joined = new Uint8Array(this.#buffer.length + chunk.length);
      joined.set(this.#buffer);
      joined.set(chunk, this.#buffer.length);
      this.#buffer = joined;
    }
  }
}
