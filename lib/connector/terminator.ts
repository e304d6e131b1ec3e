/**
 * The connector's end of a session: IP packets from the agent are terminated
 * here, in user space. ICMP echo is answered; UDP and TCP to a service port are
 * bridged to the forward target with that port; anything else is refused with
 * an ICMP unreachable (or a TCP reset) and counted. Nothing is forwarded
 * anywhere but the configured targets, whatever the packets say.
 */
import {
  type IpPacket,
  parseIp,
  parseUdp,
  PROTOCOL_ICMP,
  PROTOCOL_ICMPV6,
  PROTOCOL_TCP,
  PROTOCOL_UDP,
  UNREACHABLE_V4,
  UNREACHABLE_V6,
  writeDestinationUnreachable,
  writeEchoReply,
} from "../packet/mod.ts";
import type { SocketAddress } from "../net/address.ts";
import type { TcpCounters } from "../tcp/counters.ts";
import type { ConnectorLimits } from "./limits.ts";
import { UdpFlows } from "./udp_flows.ts";

/** Counters of a terminator. */
export interface TerminatorStats {
  packetsIn: number;
  echoReplies: number;
  malformed: number;
  refused: number;
}

/** Handles TCP segments; supplied by the connector (the userspace TCP stack). */
export interface TcpHandler {
  receive(packet: Uint8Array, ip: IpPacket): void;
  close(): void;
  /** The TCP stack's counters (live: read them, do not write). */
  readonly counters: TcpCounters;
}

/** Terminates one session's packets. */
export class Terminator {
  readonly stats: TerminatorStats = { packetsIn: 0, echoReplies: 0, malformed: 0, refused: 0 };
  readonly udp: UdpFlows;
  readonly #targets: Map<number, SocketAddress>;
  readonly #send: (packet: Uint8Array) => void;
  readonly #tcp: TcpHandler | null;
  readonly #scratch = new Uint8Array(1500);

  /**
   * `targets` maps a service port to its forward target; `send` carries a packet
   * back to the agent; `tcp` (optional) terminates TCP; `limits` are the
   * process's, shared with every other session.
   */
  constructor(
    targets: Map<number, SocketAddress>,
    send: (packet: Uint8Array) => void,
    tcp: TcpHandler | null,
    limits: ConnectorLimits,
  ) {
    this.#targets = targets;
    this.#send = send;
    this.#tcp = tcp;
    this.udp = new UdpFlows(send, limits);
  }

  /** Handles one IP packet from the agent (the bytes are valid only during the call). */
  receive(packet: Uint8Array): void {
    this.stats.packetsIn++;
    const ip = parseIp(packet);
    if (typeof ip === "string") {
      this.stats.malformed++;
      return;
    }
    switch (ip.protocol) {
      case PROTOCOL_ICMP:
      case PROTOCOL_ICMPV6: {
        const length = writeEchoReply(packet, this.#scratch);
        if (typeof length === "number") {
          this.stats.echoReplies++;
          this.#send(this.#scratch.subarray(0, length));
        } else {
          this.stats.malformed++;
        }
        return;
      }
      case PROTOCOL_UDP: {
        const udp = parseUdp(ip);
        if (typeof udp === "string") {
          this.stats.malformed++;
          return;
        }
        const target = this.#targets.get(udp.dstPort);
        if (!target || !this.udp.forward(ip, udp, target)) {
          this.#refuse(packet, ip, "port");
        }
        return;
      }
      case PROTOCOL_TCP:
        if (this.#tcp) this.#tcp.receive(packet, ip);
        else this.#refuse(packet, ip, "protocol");
        return;
      default:
        this.#refuse(packet, ip, "protocol");
    }
  }

  #refuse(packet: Uint8Array, ip: IpPacket, what: "port" | "protocol"): void {
    this.stats.refused++;
    const code = ip.version === 4
      ? (what === "port" ? UNREACHABLE_V4.port : UNREACHABLE_V4.protocol)
      : (what === "port" ? UNREACHABLE_V6.port : UNREACHABLE_V6.adminProhibited);
    const length = writeDestinationUnreachable(packet, this.#scratch, { code });
    if (typeof length === "number") this.#send(this.#scratch.subarray(0, length));
  }

  /** Closes UDP flows and the TCP handler. */
  close(): void {
    this.udp.close();
    this.#tcp?.close();
  }

  /** The session's TCP counters, or null when it terminates no TCP. */
  get tcpCounters(): TcpCounters | null {
    return this.#tcp?.counters ?? null;
  }
}
