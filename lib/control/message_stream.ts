/** Control messages framed on the relay connection's control stream (docs/protocol.md). */
import type { QuicStream } from "../quic/stream.ts";
import { FramedJsonStream } from "./framed_json.ts";
import { type Message, parseMessage } from "./messages.ts";

/** Largest control message accepted. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/** Reads and writes framed control messages on one stream; unknown message types are skipped. */
export class MessageStream extends FramedJsonStream<Message> {
  constructor(stream: QuicStream) {
    super(stream, parseMessage, MAX_MESSAGE_BYTES, "control message");
  }
}
