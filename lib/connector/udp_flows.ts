/**
 * UDP flows of the connector: each (agent address, port, service port) gets its
 * own UDP socket to the forward target, so replies map back to the flow; flows
 * idle for a while are closed, and their number is bounded.
 */
import { getLogger } from "@logtape/logtape";
import {
  type IpPacket,
  type UdpDatagram,
  udpHeadersLength,
  writeUdpPacket,
} from "../packet/mod.ts";
import type { SocketAddress } from "../net/address.ts";

const log = getLogger(["ztna", "connector", "udp"]);

/** A flow closes after this long without a datagram either way. */
export const UDP_FLOW_IDLE_MS = 60_000;
/** Most concurrent flows per connector session. */
export const MAX_UDP_FLOWS = 1024;

interface Flow {
  socket: Deno.DatagramConn;
  /** The agent-side addresses and ports, for building replies. */
  agent: Uint8Array;
  service: Uint8Array;
  agentPort: number;
  servicePort: number;
  lastActive: number;
}

/** Counters of the UDP flows. */
export interface UdpFlowStats {
  flowsOpened: number;
  flowsExpired: number;
  flowsRefused: number;
  datagramsToTarget: number;
  datagramsFromTarget: number;
}

/** Bridges UDP datagrams from a session to forward targets and back. */
export class UdpFlows {
  readonly stats: UdpFlowStats = {
    flowsOpened: 0,
    flowsExpired: 0,
    flowsRefused: 0,
    datagramsToTarget: 0,
    datagramsFromTarget: 0,
  };
  readonly #flows = new Map<string, Flow>();
  readonly #send: (packet: Uint8Array) => void;
  readonly #sweeper: ReturnType<typeof setInterval>;
  readonly #reply = new Uint8Array(65_575);

  /** `send` carries a reply IP packet back to the agent. */
  constructor(send: (packet: Uint8Array) => void) {
    this.#send = send;
    this.#sweeper = setInterval(() => this.#expire(), 5_000);
  }

  /** Sends one datagram of a flow to `target`; false if the flow limit refused a new flow. */
  forward(ip: IpPacket, udp: UdpDatagram, target: SocketAddress): boolean {
    const key = `${ip.src.join(".")}|${udp.srcPort}|${ip.dst.join(".")}|${udp.dstPort}`;
    let flow = this.#flows.get(key);
    if (!flow) {
      if (this.#flows.size >= MAX_UDP_FLOWS) {
        this.stats.flowsRefused++;
        return false;
      }
      const socket = Deno.listenDatagram({
        transport: "udp",
        hostname: target.hostname.includes(":") ? "::" : "0.0.0.0",
        port: 0,
      });
      flow = {
        socket,
        agent: ip.src.slice(),
        service: ip.dst.slice(),
        agentPort: udp.srcPort,
        servicePort: udp.dstPort,
        lastActive: performance.now(),
      };
      this.#flows.set(key, flow);
      this.stats.flowsOpened++;
      void this.#pump(key, flow);
    }
    flow.lastActive = performance.now();
    this.stats.datagramsToTarget++;
    flow.socket.send(udp.payload.slice(), { transport: "udp", ...target }).catch((error) => {
      log.debug("UDP send to {target} failed: {error}", { target, error: String(error) });
    });
    return true;
  }

  /** Relays the target's replies back into the session as UDP/IP packets. */
  async #pump(key: string, flow: Flow): Promise<void> {
    try {
      for await (const [payload] of flow.socket) {
        flow.lastActive = performance.now();
        const length = writeUdpPacket(this.#reply, {
          src: flow.service,
          dst: flow.agent,
          srcPort: flow.servicePort,
          dstPort: flow.agentPort,
          payload: payload.subarray(0, this.#reply.length - udpHeadersLength(flow.service)),
        });
        this.stats.datagramsFromTarget++;
        this.#send(this.#reply.subarray(0, length));
      }
    } catch {
      // Closed by expiry or shutdown.
    } finally {
      this.#flows.delete(key);
    }
  }

  #expire(): void {
    const now = performance.now();
    for (const [key, flow] of this.#flows) {
      if (now - flow.lastActive < UDP_FLOW_IDLE_MS) continue;
      this.#flows.delete(key);
      this.stats.flowsExpired++;
      flow.socket.close();
    }
  }

  /** Number of open flows. */
  get size(): number {
    return this.#flows.size;
  }

  /** Closes every flow. */
  close(): void {
    clearInterval(this.#sweeper);
    for (const flow of this.#flows.values()) flow.socket.close();
    this.#flows.clear();
  }
}
