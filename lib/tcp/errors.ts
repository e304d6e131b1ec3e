/** Why a TCP connection ended abnormally. */

/**
 * `reset`: the peer sent RST; `timeout`: retransmissions or zero-window probes went
 * unanswered too often, or a half-closed connection idled out; `aborted`: the application
 * aborted it (RST sent); `stack-closed`: the whole stack was closed.
 */
export type TcpErrorCode = "reset" | "timeout" | "aborted" | "stack-closed";

/** The error a connection's streams and `closed` promise reject with; names the flow. */
export class TcpConnectionError extends Error {
  /** What happened. */
  readonly code: TcpErrorCode;

  /** `flow` is the `describeFlow` text; `detail` says what happened. */
  constructor(code: TcpErrorCode, flow: string, detail: string, options?: ErrorOptions) {
    super(`TCP ${flow}: ${detail}`, options);
    this.name = "TcpConnectionError";
    this.code = code;
  }
}
