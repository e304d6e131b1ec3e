/**
 * Control messages framed on a QUIC stream: a 4-byte big-endian length, then
 * that many bytes of UTF-8 JSON. Messages over 64 KiB are refused.
 */
import type { QuicStream } from "../quic/stream.ts";
import { type Message, parseMessage, ProtocolError } from "./messages.ts";

/** Largest message accepted. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/** Reads and writes framed control messages on one stream. */
export class MessageStream {
  readonly #stream: QuicStream;
  #buffer = new Uint8Array(0);
  #writing: Promise<void> = Promise.resolve();

  constructor(stream: QuicStream) {
    this.#stream = stream;
  }

  /** Sends a message; sends are written in call order. */
  send(message: Message): Promise<void> {
    const body = new TextEncoder().encode(JSON.stringify(message));
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length);
    frame.set(body, 4);
    this.#writing = this.#writing.then(() => this.#stream.write(frame));
    return this.#writing;
  }

  /** The next message, or null when the peer ended the stream; a ProtocolError if it is malformed. */
  async receive(): Promise<Message | null> {
    for (;;) {
      if (this.#buffer.length >= 4) {
        const length = new DataView(this.#buffer.buffer, this.#buffer.byteOffset).getUint32(0);
        if (length > MAX_MESSAGE_BYTES) {
          throw new ProtocolError(
            `control message of ${length} bytes exceeds ${MAX_MESSAGE_BYTES}`,
          );
        }
        if (this.#buffer.length >= 4 + length) {
          const body = this.#buffer.subarray(4, 4 + length);
          this.#buffer = this.#buffer.subarray(4 + length);
          let value: unknown;
          try {
            value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
          } catch (error) {
            throw new ProtocolError(`control message is not JSON: ${(error as Error).message}`);
          }
          return parseMessage(value);
        }
      }
      const chunk = await this.#stream.read();
      if (chunk === null) {
        if (this.#buffer.length > 0) throw new ProtocolError("control stream ended mid-message");
        return null;
      }
      const joined = new Uint8Array(this.#buffer.length + chunk.length);
      joined.set(this.#buffer);
      joined.set(chunk, this.#buffer.length);
      this.#buffer = joined;
    }
  }
}
