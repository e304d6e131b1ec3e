/** A node (connector or agent) connected to the relay, as the relay's parts see it. */
import type { Connection } from "../quic/connection.ts";
import type { Grants } from "../pki/grants.ts";
import type { MessageStream } from "../control/message_stream.ts";
import type { TokenBucket } from "./token_bucket.ts";

/** A connected node that said hello. */
export interface RelayNode {
  connection: Connection;
  grants: Grants;
  control: MessageStream;
  /** The address the relay observes for it now. */
  observed: string;
  /** Services it publishes (connectors). */
  services: Set<string>;
  /** IDs of the sessions it is in (pending or open). */
  sessions: Set<string>;
  /** Its budget of forwarded DATAGRAMs. */
  bucket: TokenBucket;
  /** Its budget of requests (`register`, `open-session`). */
  requests: TokenBucket;
}
