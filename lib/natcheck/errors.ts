/** The error a NAT check throws: a misuse or a socket it cannot use, never a NAT's behaviour. */

/** Why a NAT check could not run. */
export type NatCheckErrorReason =
  /** Bad options (a server address of another family than the socket, a bad timeout, ...). */
  | "bad-options"
  /** The socket's STUN datagrams already have a handler, or the second socket is not fresh. */
  | "busy"
  /** The endpoint or the second socket is closed. */
  | "closed"
  /** The second socket could not be bound. */
  | "bind-failed"
  /** The caller's AbortSignal fired. */
  | "aborted";

/** A NAT check could not run; `reason` says why. */
export class NatCheckError extends Error {
  /** Why. */
  readonly reason: NatCheckErrorReason;

  constructor(reason: NatCheckErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NatCheckError";
    this.reason = reason;
  }
}
