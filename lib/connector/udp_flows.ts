/**
 * UDP flows of the connector: each (agent address, port, service port) gets its
 * own UDP socket to the forward target, so replies map back to the flow; flows
 * idle for a while are closed, and their number is bounded per session and per
 * process (ConnectorLimits). A socket that cannot be opened (descriptors ran
 * out, say) refuses the flow like a limit does.
 */
import { getLogger } from "@logtape/logtape";
import {
  type IpPacket,
  type UdpDatagram,
  udpHeadersLength,
  writeUdpPacket,
} from "../packet/mod.ts";
import type { SocketAddress } from "../net/address.ts";
import type { ConnectorLimits } from "./limits.ts";

const log = getLogger(["ztna", "connector", "udp"]);

/** Longest time between two sweeps for idle flows. */
const SWEEP_MS = 5_000;

interface Flow {
  socket: Deno.DatagramConn;
  /** The agent-side addresses and ports, for building replies. */
  agent: Uint8Array;
  service: Uint8Array;
  agentPort: number;
  servicePort: number;
  lastActive: number;
  /** Closed and given back to the limits. */
  closed: boolean;
}

/** Counters of the UDP flows. */
export interface UdpFlowStats {
  flowsOpened: number;
  flowsExpired: number;
  /** New flows refused: by a limit, or because their socket could not be opened. */
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
  readonly #limits: ConnectorLimits;
  readonly #sweeper: ReturnType<typeof setInterval>;
  readonly #reply = new Uint8Array(65_575);

  /** `send` carries a reply IP packet back to the agent; `limits` are the process's. */
  constructor(send: (packet: Uint8Array) => void, limits: ConnectorLimits) {
    this.#send = send;
    this.#limits = limits;
    const sweep = Math.min(SWEEP_MS, Math.max(1, Math.floor(limits.udpFlowIdleMs / 2)));
    this.#sweeper = setInterval(() => this.#expire(), sweep);
  }

  /**
   * Sends one datagram of a flow to `target`; false if a new flow was refused (a limit, or
   * its socket could not be opened).
   */
  forward(ip: IpPacket, udp: UdpDatagram, target: SocketAddress): boolean {
    const key = `${ip.src.join(".")}|${udp.srcPort}|${ip.dst.join(".")}|${udp.dstPort}`;
    let flow = this.#flows.get(key);
    if (!flow) {
      if (!this.#limits.admitUdpFlow(this.#flows.size)) {
        this.stats.flowsRefused++;
        return false;
      }
      let socket: Deno.DatagramConn;
      try {
        socket = Deno.listenDatagram({
          transport: "udp",
          hostname: target.hostname.includes(":") ? "::" : "0.0.0.0",
          port: 0,
        });
      } catch (error) {
        this.#limits.udpFlowClosed();
        this.#limits.openFailed("udp", target, error);
        this.stats.flowsRefused++;
        return false;
      }
      flow = {
        socket,
        agent: ip.src.slice(),
        service: ip.dst.slice(),
        agentPort: udp.srcPort,
        servicePort: udp.dstPort,
        lastActive: performance.now(),
        closed: false,
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
    } catch (error) {
      if (!flow.closed) log.debug("UDP flow socket failed: {error}", { error: String(error) });
    } finally {
      this.#drop(key, flow);
    }
  }

  #expire(): void {
    const now = performance.now();
    for (const [key, flow] of this.#flows) {
      if (now - flow.lastActive < this.#limits.udpFlowIdleMs) continue;
      this.stats.flowsExpired++;
      this.#drop(key, flow);
    }
  }

  /** Closes a flow's socket and gives its slot back, once. */
  #drop(key: string, flow: Flow): void {
    if (flow.closed) return;
    flow.closed = true;
    if (this.#flows.get(key) === flow) this.#flows.delete(key);
    this.#limits.udpFlowClosed();
    try {
      flow.socket.close();
    } catch {
      // The socket failed and closed already.
    }
  }

  /** Number of open flows. */
  get size(): number {
    return this.#flows.size;
  }

  /** Closes every flow. */
  close(): void {
    clearInterval(this.#sweeper);
    for (const [key, flow] of [...this.#flows]) this.#drop(key, flow);
  }
}
