/**
 * The TCP connections the agent's host has open through a session, so that
 * when the session ends for good (its connector crashed or restarted) they
 * fail at once instead of hanging: a connection that only receives sends
 * nothing the agent could answer with a RST. For each one the agent writes
 * an out-of-window ACK "from" the service to the TUN; the host's TCP answers
 * it with an ACK carrying its exact next sequence numbers (RFC 9293
 * §3.10.7.4), and that ACK, meeting no session (or the connector's new
 * session, which knows no such flow), is answered with a RST the host accepts.
 *
 * Flows are learned from the host's outgoing SYNs and forgotten on its RSTs:
 * two flag checks per packet, no parsing on the hot path. The table is
 * bounded; the oldest flows go first.
 */
import { formatIpAddress, TCP_ACK, TCP_RST, TCP_SYN } from "../packet/mod.ts";
import { buildSegment } from "../tcp/segment.ts";

/** Default bound on tracked flows. */
export const MAX_OPEN_TCP_FLOWS = 16_384;

const PROTOCOL_TCP = 6;

/** One flow, as the host sees it (local = the host, remote = the service). */
interface Flow {
  local: Uint8Array;
  remote: Uint8Array;
  localPort: number;
  remotePort: number;
}

/** The host's open TCP flows through the agent. */
export class OpenTcpFlows {
  readonly #max: number;
  readonly #flows = new Map<string, Flow>();

  constructor(max = MAX_OPEN_TCP_FLOWS) {
    this.#max = max;
  }

  /** Flows tracked now. */
  get size(): number {
    return this.#flows.size;
  }

  /** Looks at a packet the host sends into the tunnel. */
  outgoing(packet: Uint8Array): void {
    const tcp = tcpOffset(packet);
    if (tcp < 0 || packet.length < tcp + 14) return;
    const flags = packet[tcp + 13];
    const syn = (flags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    if (!syn && !(flags & TCP_RST)) return;
    const flow = flowOf(packet, tcp);
    const key = keyOf(flow);
    if (syn) {
      this.#flows.delete(key);
      this.#flows.set(key, flow);
      if (this.#flows.size > this.#max) this.#flows.delete(this.#flows.keys().next().value!);
    } else {
      this.#flows.delete(key);
    }
  }

  /**
   * The probes that make the host's flows to `serviceIp` fail (see the module
   * comment); those flows are forgotten.
   */
  probes(serviceIp: string): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const [key, flow] of this.#flows) {
      if (formatIpAddress(flow.remote) !== serviceIp) continue;
      this.#flows.delete(key);
      out.push(buildSegment(
        {
          local: flow.remote,
          remote: flow.local,
          localPort: flow.remotePort,
          remotePort: flow.localPort,
        },
        // A sequence number the host cannot expect: it answers with its own state.
        { seq: crypto.getRandomValues(new Uint32Array(1))[0], ack: 0, flags: TCP_ACK, window: 0 },
      ));
    }
    return out;
  }
}

/** Offset of the TCP header of an IPv4 or IPv6 (no extension headers) TCP packet, else -1. */
function tcpOffset(packet: Uint8Array): number {
  if (packet.length < 20) return -1;
  const version = packet[0] >> 4;
  if (version === 4) {
    // A later fragment carries no TCP header.
    const fragmentOffset = ((packet[6] & 0x1f) << 8) | packet[7];
    return packet[9] === PROTOCOL_TCP && fragmentOffset === 0 ? (packet[0] & 0x0f) * 4 : -1;
  }
  if (version === 6 && packet.length >= 40) return packet[6] === PROTOCOL_TCP ? 40 : -1;
  return -1;
}

function flowOf(packet: Uint8Array, tcp: number): Flow {
  const v4 = packet[0] >> 4 === 4;
  const src = v4 ? packet.slice(12, 16) : packet.slice(8, 24);
  const dst = v4 ? packet.slice(16, 20) : packet.slice(24, 40);
  return {
    local: src,
    remote: dst,
    localPort: (packet[tcp] << 8) | packet[tcp + 1],
    remotePort: (packet[tcp + 2] << 8) | packet[tcp + 3],
  };
}

function keyOf(flow: Flow): string {
  return `${flow.local.join(".")}/${flow.localPort}>${flow.remote.join(".")}/${flow.remotePort}`;
}
