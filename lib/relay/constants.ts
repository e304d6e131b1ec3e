/** Wire constants shared by the relay and the nodes. */

/** ALPN of a node's connection to the relay. */
export const RELAY_ALPN = "ztna-relay/1";
/** ALPN of the end-to-end session between agent and connector. */
export const SESSION_ALPN = "ztna-session/1";
/** Application close code of a session the connector's access list refuses. */
export const SESSION_ACCESS_DENIED = 0x403;
/** Idle timeout of relay connections; nodes send keep-alives well within it. */
export const RELAY_IDLE_TIMEOUT_MS = 30_000;
/**
 * UDP payload of relay connections. 1350 bytes fit any path with an IPv6 MTU
 * of 1400 or more (1350 + 8 UDP + 40 IPv6).
 */
export const RELAY_MAX_UDP_PAYLOAD = 1350;
/** Application close codes of relay connections. */
export const RelayCloseCode = { Protocol: 1, Forbidden: 2, Replaced: 3, Busy: 4 } as const;
/** Application close code of a session whose signalling broke the protocol. */
export const SESSION_PROTOCOL_ERROR = 0x400;
