/**
 * One session's end in the kernel mode: the checks and rewrites between the agent's packets
 * and the TUN. From the agent, a packet must be IPv4, come from the session's inner source
 * and go to its service address (both learned from its first packet: an agent routes one
 * service IP per session) and to a configured port (ICMP echo goes to the service's echo
 * address); it then gets the session's pool address as its source and the target's address
 * as its destination, and goes to the kernel. Anything else is refused as the rootless mode
 * refuses it (a RST for TCP, an ICMP unreachable otherwise) or dropped, and counted. From
 * the kernel, a packet to the session's pool address must come from one of its targets (an
 * ICMP error must quote a packet to one); its addresses are set back to the service address
 * and the agent's source.
 */
import {
  type Ipv4Packet,
  isPacketError,
  parseIpv4,
  parseTcp,
  PROTOCOL_ICMP,
  PROTOCOL_TCP,
  PROTOCOL_UDP,
  UNREACHABLE_V4,
  UNREACHABLE_V6,
  writeDestinationUnreachable,
} from "../../packet/mod.ts";
import { readU16 } from "../../packet/bytes.ts";
import { resetFor } from "../../tcp/segment.ts";
import { ipv4ToNumber } from "./address_pool.ts";
import {
  ipv4Destination,
  ipv4Source,
  isIcmpErrorV4,
  rewriteIpv4,
  translateIcmpError,
} from "./packet_rewrite.ts";

/** Counters of the kernel mode, shared by its sessions. */
export interface KernelStats {
  /** Packets from agents. */
  packetsIn: number;
  /** Packets from agents handed to the TUN (written in batches, see `dropped.writeFailed`). */
  forwarded: number;
  /** Packets from the TUN sent to agents. */
  packetsOut: number;
  /** Refused with a RST or an ICMP unreachable, by cause. */
  refused: { port: number; address: number; protocol: number };
  /** Dropped without an answer, by cause. */
  dropped: {
    /** Not a valid IPv4 packet, a fragment, or ICMP other than echo. */
    malformed: number;
    /** From another inner source than the session's. */
    source: number;
    /** From the TUN: to a pool address no session holds. */
    noSession: number;
    /** From the TUN: from no target of the session. */
    notFromTarget: number;
    /** Batches of TUN writes that failed (each holds one or more forwarded packets). */
    writeFailed: number;
  };
}

/** Zeroed counters. */
export function emptyKernelStats(): KernelStats {
  return {
    packetsIn: 0,
    forwarded: 0,
    packetsOut: 0,
    refused: { port: 0, address: 0, protocol: 0 },
    dropped: { malformed: 0, source: 0, noSession: 0, notFromTarget: 0, writeFailed: 0 },
  };
}

/** A session's targets as numbers: service port → target address, and the echo address. */
export interface SessionTargets {
  byPort: Map<number, number>;
  echo: number;
}

/** What a session writes to and sends with. */
export interface SessionIo {
  /** Writes a packet to the TUN, or queues a copy for a batched write (the bytes are used during the call only). */
  write(packet: Uint8Array): void;
  /** Sends a packet to the agent. */
  send(packet: Uint8Array): void;
  stats: KernelStats;
  /** A buffer of at least the TUN MTU, used during one call. */
  scratch: Uint8Array;
}

/** A key for an address and port (or an address alone with port -1). */
function endpointKey(address: number, port: number): number {
  return address * 65536 + port + 1;
}

/** One session in the kernel mode. */
export class KernelSession {
  /** The session's pool address. */
  readonly pooled: number;
  readonly #targets: SessionTargets;
  readonly #io: SessionIo;
  /** Target endpoints replies may come from. */
  readonly #replyFrom = new Set<number>();
  #agentSource: number | null = null;
  #serviceAddress: number | null = null;

  /** A session holding `pooled`, forwarding to `targets`. */
  constructor(pooled: number, targets: SessionTargets, io: SessionIo) {
    this.pooled = pooled;
    this.#targets = targets;
    this.#io = io;
    for (const [port, address] of targets.byPort) this.#replyFrom.add(endpointKey(address, port));
    this.#replyFrom.add(endpointKey(targets.echo, -1));
  }

  /** Handles one packet from the agent (valid during the call only). */
  fromAgent(packet: Uint8Array): void {
    const stats = this.#io.stats;
    stats.packetsIn++;
    if (packet.length > 0 && packet[0] >> 4 === 6) {
      this.#refuseV6(packet);
      return;
    }
    const ip = parseIpv4(packet);
    if (isPacketError(ip) || ip.fragment) {
      stats.dropped.malformed++;
      return;
    }
    const src = ipv4ToNumber(ip.src), dst = ipv4ToNumber(ip.dst);
    this.#agentSource ??= src;
    this.#serviceAddress ??= dst;
    if (src !== this.#agentSource) {
      stats.dropped.source++;
      return;
    }
    if (dst !== this.#serviceAddress) {
      this.#refuse(ip, "address");
      return;
    }
    if (ip.protocol === PROTOCOL_ICMP) {
      if (ip.payloadLength >= 8 && packet[ip.payloadOffset] === 8) {
        this.#forward(ip, this.#targets.echo);
      } else {
        stats.dropped.malformed++;
      }
      return;
    }
    if (ip.protocol !== PROTOCOL_TCP && ip.protocol !== PROTOCOL_UDP) {
      this.#refuse(ip, "protocol");
      return;
    }
    const minimum = ip.protocol === PROTOCOL_TCP ? 20 : 8;
    if (ip.payloadLength < minimum) {
      stats.dropped.malformed++;
      return;
    }
    const target = this.#targets.byPort.get(readU16(packet, ip.payloadOffset + 2));
    if (target === undefined) this.#refuse(ip, "port");
    else this.#forward(ip, target);
  }

  /**
   * Handles one packet from the TUN addressed to this session's pool address (its bytes are
   * rewritten in place and sent to the agent).
   */
  fromKernel(packet: Uint8Array): void {
    const stats = this.#io.stats;
    if (this.#agentSource === null || this.#serviceAddress === null) {
      stats.dropped.notFromTarget++;
      return;
    }
    const headerLength = (packet[0] & 0x0f) * 4;
    const end = Math.min(readU16(packet, 2), packet.length);
    const icmpError = isIcmpErrorV4(packet);
    if (!this.#fromTarget(packet, headerLength, icmpError)) {
      stats.dropped.notFromTarget++;
      return;
    }
    if (icmpError) translateIcmpError(packet, this.#serviceAddress, this.#agentSource);
    else rewriteIpv4(packet, this.#serviceAddress, this.#agentSource, end);
    stats.packetsOut++;
    this.#io.send(packet.subarray(0, end));
  }

  /** Whether a packet from the TUN comes from (or, an ICMP error, quotes a packet to) a target. */
  #fromTarget(packet: Uint8Array, headerLength: number, icmpError: boolean): boolean {
    if (icmpError) {
      const inner = packet.subarray(headerLength + 8);
      const innerHeader = (inner[0] & 0x0f) * 4;
      const port = inner.length >= innerHeader + 4 ? readU16(inner, innerHeader + 2) : -1;
      return this.#replyFrom.has(endpointKey(ipv4Destination(inner), port)) ||
        this.#replyFrom.has(endpointKey(ipv4Destination(inner), -1));
    }
    const src = ipv4Source(packet);
    const protocol = packet[9];
    if (protocol === PROTOCOL_ICMP) return this.#replyFrom.has(endpointKey(src, -1));
    if (protocol !== PROTOCOL_TCP && protocol !== PROTOCOL_UDP) return false;
    // A fragment past the first has no ports: it follows a first fragment already let through.
    if ((readU16(packet, 6) & 0x1fff) !== 0) return this.#targetAddress(src);
    return this.#replyFrom.has(endpointKey(src, readU16(packet, headerLength)));
  }

  #targetAddress(address: number): boolean {
    for (const target of this.#targets.byPort.values()) if (target === address) return true;
    return false;
  }

  #forward(ip: Ipv4Packet, target: number): void {
    const out = this.#io.scratch.subarray(0, ip.packetLength);
    out.set(ip.bytes.subarray(0, ip.packetLength));
    rewriteIpv4(out, this.pooled, target);
    try {
      this.#io.write(out);
      this.#io.stats.forwarded++;
    } catch {
      this.#io.stats.dropped.writeFailed++;
    }
  }

  /** Answers a refused IPv4 packet as the rootless mode does: a RST, or an ICMP unreachable. */
  #refuse(ip: Ipv4Packet, why: "port" | "address" | "protocol"): void {
    this.#io.stats.refused[why]++;
    if (ip.protocol === PROTOCOL_TCP) {
      const segment = parseTcp(ip);
      const reset = isPacketError(segment) ? undefined : resetFor(ip, segment);
      if (reset) this.#io.send(reset);
      return;
    }
    const code = why === "port"
      ? UNREACHABLE_V4.port
      : why === "protocol"
      ? UNREACHABLE_V4.protocol
      : UNREACHABLE_V4.host;
    const length = writeDestinationUnreachable(ip.bytes, this.#io.scratch, { code });
    if (typeof length === "number") this.#io.send(this.#io.scratch.subarray(0, length));
  }

  /** IPv6 is not carried in the kernel mode: refused (administratively prohibited). */
  #refuseV6(packet: Uint8Array): void {
    this.#io.stats.refused.protocol++;
    const code = UNREACHABLE_V6.adminProhibited;
    const length = writeDestinationUnreachable(packet, this.#io.scratch, { code });
    if (typeof length === "number") this.#io.send(this.#io.scratch.subarray(0, length));
  }
}
