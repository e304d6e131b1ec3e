/**
 * `ztna probe ping SERVICE`: like `tailscale ping`, it opens a session to a
 * service with an agent identity (no TUN, no root), sends ICMP echo requests
 * through it and reports each reply's round-trip time and the path it took:
 * `via relay` first, then `direct IP:PORT` once the session migrated.
 */
import {
  fillIcmpChecksum,
  ICMP_HEADER_LENGTH,
  ICMPV4_ECHO_REQUEST,
  isPacketError,
  parseIcmp,
  parseIp,
  parseIpAddress,
  PROTOCOL_ICMP,
  writeIpHeader,
} from "../packet/mod.ts";
import type { HostPort } from "../net/resolve.ts";
import type { NodeIdentity } from "../node/configs.ts";
import { Node } from "../node/node.ts";
import type { Session } from "../session/session.ts";

/** Default number of echo requests. */
export const DEFAULT_PING_COUNT = 10;
/** Default pause between requests (ms). */
export const DEFAULT_PING_INTERVAL_MS = 500;
/** How long a request waits for its reply (ms). */
export const PING_REPLY_TIMEOUT_MS = 2_000;
/** Addresses of the probe's echo packets: the agent's default TUN address to a reserved one. */
const SOURCE = parseIpAddress("100.64.0.1");
const TARGET = parseIpAddress("100.64.0.2");
const PAYLOAD = 56;

/** Options of a ping probe. */
export interface PingOptions {
  service: string;
  identity: NodeIdentity;
  /** The relay: an IP address or a host name. */
  relay: HostPort;
  relayName: string;
  count: number;
  intervalMs: number;
  /** Keep the session on the relay. */
  relayOnly?: boolean;
}

/** One echo request's outcome. */
export interface PingReply {
  seq: number;
  /** Round-trip time, or null when no reply came within PING_REPLY_TIMEOUT_MS. */
  rttMs: number | null;
  /** `via relay` or `direct IP:PORT`: the session's path when the request was sent. */
  path: string;
}

/** What a ping probe found, for its summary line. */
export interface PingSummary {
  service: string;
  /** The connector's node name. */
  connector: string;
  sent: number;
  received: number;
  /** How long after the session was up it first went direct (ms), if it did. */
  directAfterMs: number | null;
}

/** Writes an ICMP echo request with identifier `id` and sequence `seq`. */
function echoRequest(id: number, seq: number): Uint8Array {
  const packet = new Uint8Array(20 + ICMP_HEADER_LENGTH + PAYLOAD);
  const start = writeIpHeader(packet, {
    src: SOURCE,
    dst: TARGET,
    protocol: PROTOCOL_ICMP,
    payloadLength: ICMP_HEADER_LENGTH + PAYLOAD,
  });
  packet[start] = ICMPV4_ECHO_REQUEST;
  new DataView(packet.buffer).setUint16(start + 4, id);
  new DataView(packet.buffer).setUint16(start + 6, seq);
  fillIcmpChecksum(packet, start, packet.length);
  return packet;
}

/**
 * Runs the probe: calls `onReply` for each request as its reply arrives (or
 * times out) and resolves with the summary. Rejects with the node's errors
 * (refusals are FatalRelayError).
 */
export async function pingService(
  options: PingOptions,
  onReply: (reply: PingReply) => void,
): Promise<PingSummary> {
  const node = new Node({
    identity: options.identity,
    relay: options.relay,
    relayName: options.relayName,
    role: "agent",
    relayOnly: options.relayOnly,
  });
  try {
    await node.start();
    const session = await node.openSession(options.service);
    const up = performance.now();
    let directAt: number | null = null;
    const id = crypto.getRandomValues(new Uint16Array(1))[0];
    const waiting = new Map<number, (at: number) => void>();
    session.connection!.onDatagram((packet) => {
      const ip = parseIp(packet);
      if (isPacketError(ip)) return;
      const icmp = parseIcmp(ip);
      if (isPacketError(icmp) || icmp.echo !== "reply" || icmp.identifier !== id) return;
      waiting.get(icmp.sequence)?.(performance.now());
    });
    const replies = [];
    for (let seq = 1; seq <= options.count; seq++) {
      const reply = await echo(session, waiting, id, seq);
      if (directAt === null && reply.path.startsWith("direct")) directAt = performance.now();
      onReply(reply);
      replies.push(reply);
      if (seq < options.count) await new Promise((r) => setTimeout(r, options.intervalMs));
    }
    return {
      service: options.service,
      connector: session.peerName,
      sent: replies.length,
      received: replies.filter((r) => r.rttMs !== null).length,
      directAfterMs: directAt === null ? null : Math.round(directAt - up),
    };
  } finally {
    await node.close();
  }
}

/** Sends one echo request and waits for its reply. */
function echo(
  session: Session,
  waiting: Map<number, (at: number) => void>,
  id: number,
  seq: number,
): Promise<PingReply> {
  return new Promise((resolve) => {
    const sent = performance.now();
    const path = session.pathLabel;
    const timer = setTimeout(() => {
      waiting.delete(seq);
      resolve({ seq, rttMs: null, path });
    }, PING_REPLY_TIMEOUT_MS);
    waiting.set(seq, (at) => {
      clearTimeout(timer);
      waiting.delete(seq);
      resolve({ seq, rttMs: at - sent, path });
    });
    session.connection!.sendDatagram(echoRequest(id, seq));
  });
}

/** One reply as a line: `reply 3 from web: 0.41 ms, direct 198.51.100.7:40211`. */
export function formatPingReply(service: string, reply: PingReply): string {
  return reply.rttMs === null
    ? `no reply ${reply.seq} from ${service} within ${PING_REPLY_TIMEOUT_MS} ms (${reply.path})`
    : `reply ${reply.seq} from ${service}: ${reply.rttMs.toFixed(2)} ms, ${reply.path}`;
}
