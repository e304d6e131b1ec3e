/**
 * QUIC configurations of a node: its relay connection and its end-to-end
 * session. Size arithmetic (bytes), with a short-header packet costing
 * 1 (flags) + 16 (our connection IDs) + up to 4 (packet number) + 16 (AEAD tag)
 * and a DATAGRAM frame 1 (type) + 2 (length):
 * - relay connection: UDP payload 1350, so a relay DATAGRAM carries up to
 *   1350 - 40 = 1310 bytes: an 8-byte session ID and a session packet of up to 1302;
 * - session: UDP payload 1280 (fits in 1302, and is at least the 1200 QUIC needs),
 *   so a session DATAGRAM carries up to 1280 - 40 = 1240 bytes: one IP packet;
 * - the agent's TUN MTU is therefore 1240.
 *
 * Congestion control stays quiche's cubic on both connections (and the relay's
 * side): measured through two NATs with 0/1/5 % random loss (issue 10),
 * bbr2_gcongestion on the session and the relay connection was no better under
 * loss and 15–45 % slower without it (our endpoint sends as soon as the window
 * allows; quiche's pacing release times are not honoured).
 *
 * The session's DATAGRAM send queue holds SESSION_DATAGRAM_SEND_QUEUE packets.
 * A shorter one trades loss for delay: with the kernel-mode connector (kernel
 * TCP both ends, windows of megabytes) 256 halved the ping during a one-stream
 * upload (5–7 ms instead of 11.5–13.3, two runs each) at the same throughput,
 * but only by tail-dropping — pings were lost under load (2–6 of 35) and a
 * burst of 300 DATAGRAMs was refused — and 1024 gave no lower delay than 4096.
 * So it stays 4096 (a TUN batch of 256 packets always fits); bounding the delay
 * needs a queue limit by sojourn time, sized from the path's rate.
 */
import { QuicConfig } from "../quic/config.ts";
import {
  RELAY_ALPN,
  RELAY_IDLE_TIMEOUT_MS,
  RELAY_MAX_UDP_PAYLOAD,
  SESSION_ALPN,
} from "../relay/constants.ts";

/** UDP payload of session packets (inside relay DATAGRAMs, or direct). */
export const SESSION_MAX_UDP_PAYLOAD = 1280;
/** Largest IP packet a session carries: the agent's TUN MTU. */
export const TUNNEL_MTU = 1240;
/** Session idle timeout: a relay outage shorter than this does not end a session. */
export const SESSION_IDLE_TIMEOUT_MS = 60_000;
/**
 * Connection IDs each session end keeps issued to the other. quiche needs a
 * spare one per path it probes and caps a connection's paths at this number:
 * the relay path and up to 15 direct paths at once (a round rarely has more
 * than a handful of candidates; a probe beyond the cap is counted and skipped).
 */
export const SESSION_CONNECTION_IDS = 16;
/** DATAGRAMs a session end queues for sending before it drops (see the module comment). */
export const SESSION_DATAGRAM_SEND_QUEUE = 4096;

/** A node's certificate, key and trusted CA (PEM files). */
export interface NodeIdentity {
  certificateFile: string;
  privateKeyFile: string;
  caFile: string;
}

/** Configuration of a node's connection to its relay. */
export function relayClientConfig(identity: NodeIdentity): QuicConfig {
  return new QuicConfig({
    alpn: [RELAY_ALPN],
    certificateChainFile: identity.certificateFile,
    privateKeyFile: identity.privateKeyFile,
    caFile: identity.caFile,
    idleTimeoutMs: RELAY_IDLE_TIMEOUT_MS,
    maxSendUdpPayload: RELAY_MAX_UDP_PAYLOAD,
    datagrams: { receiveQueue: 4096, sendQueue: 4096 },
  });
}

/** Configuration of a session end (the connector accepts, the agent connects). */
export function sessionConfig(identity: NodeIdentity): QuicConfig {
  return new QuicConfig({
    alpn: [SESSION_ALPN],
    certificateChainFile: identity.certificateFile,
    privateKeyFile: identity.privateKeyFile,
    caFile: identity.caFile,
    idleTimeoutMs: SESSION_IDLE_TIMEOUT_MS,
    maxSendUdpPayload: SESSION_MAX_UDP_PAYLOAD,
    datagrams: { receiveQueue: 4096, sendQueue: SESSION_DATAGRAM_SEND_QUEUE },
    activeConnectionIdLimit: SESSION_CONNECTION_IDS,
  });
}

/** A node's two QUIC configurations, built together from one identity. */
export interface NodeConfigs {
  relay: QuicConfig;
  session: QuicConfig;
}

/** Builds both configurations; throws (freeing what was built) if a file does not load. */
export function nodeConfigs(identity: NodeIdentity): NodeConfigs {
  const relay = relayClientConfig(identity);
  try {
    return { relay, session: sessionConfig(identity) };
  } catch (error) {
    relay.free();
    throw error;
  }
}

/**
 * Frees configurations replaced by a reload. Safe while connections made from
 * them live (quiche 0.30): a connection copies the settings it needs when it
 * is made, and its TLS session (BoringSSL's SSL_new) holds its own reference
 * to the configuration's SSL_CTX, so `quiche_config_free` only drops ours.
 */
export function freeNodeConfigs(configs: NodeConfigs): void {
  configs.relay.free();
  configs.session.free();
}
