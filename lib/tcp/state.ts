/** TCP connection states (RFC 9293 §3.3.2) a passive-open endpoint goes through. */

/** A connection's state; LISTEN and SYN-SENT never occur (passive open, no listening TCB). */
export type TcpState =
  | "SYN_RECEIVED"
  | "ESTABLISHED"
  | "CLOSE_WAIT"
  | "LAST_ACK"
  | "FIN_WAIT_1"
  | "FIN_WAIT_2"
  | "CLOSING"
  | "TIME_WAIT"
  | "CLOSED";

/** Whether the connection is past the handshake and not yet finished (closed or TIME_WAIT). */
export function isActiveState(state: TcpState): boolean {
  return state !== "SYN_RECEIVED" && state !== "TIME_WAIT" && state !== "CLOSED";
}

/** Whether data from the peer is still accepted (its FIN has not arrived). */
export function acceptsData(state: TcpState): boolean {
  return state === "ESTABLISHED" || state === "FIN_WAIT_1" || state === "FIN_WAIT_2";
}

/** Whether our side may still queue data to send (the application has not closed). */
export function acceptsWrites(state: TcpState): boolean {
  return state === "ESTABLISHED" || state === "CLOSE_WAIT";
}
