/**
 * TCP for the connector: the userspace TCP stack accepts agents' connections
 * to forwarded ports (others get a RST) and each one is bridged, both ways and
 * with half-close, to a real TCP connection to the port's forward target. Its
 * MSS follows the tunnel MTU, so every segment fits one session DATAGRAM.
 * Connections are bounded per session and per process, and their receive
 * windows come out of the process's buffer budget (ConnectorLimits); a SYN
 * beyond a bound, or whose target cannot be reached (descriptors ran out, say),
 * gets a RST.
 */
import { getLogger } from "@logtape/logtape";
import type { SocketAddress } from "../net/address.ts";
import { bridge, describeFlow, type TcpConnection, TcpStack } from "../tcp/mod.ts";
import { TUNNEL_MTU } from "../node/configs.ts";
import type { ConnectorLimits } from "./limits.ts";
import type { TcpHandler } from "./terminator.ts";

const log = getLogger(["ztna", "connector", "tcp"]);

/** Most receive window of each bridged TCP connection (less when the budget is tight). */
const TCP_RECEIVE_WINDOW = 1 << 20;

/**
 * Makes the TCP handler of one session: `send` carries packets back to the agent; `limits`
 * are the process's, shared with every other session.
 */
export function tcpHandler(
  send: (packet: Uint8Array) => void,
  targets: Map<number, SocketAddress>,
  limits: ConnectorLimits,
): TcpHandler {
  const stack: TcpStack = new TcpStack({
    mtu: TUNNEL_MTU,
    // A single stream moves at most one window per round trip; through a relay the RTT is
    // a few ms, so 256 KiB would cap it near 0.4 Gbit/s. Unread data is bounded by this, and
    // all connections' together by the budget.
    receiveWindow: TCP_RECEIVE_WINDOW,
    maxConnections: limits.maxTcpConnectionsPerSession,
    shared: limits.tcp,
    send,
    reuseSendBuffer: true, // send queues a copy as a session DATAGRAM
    accept: (flow) => targets.has(flow.dstPort) && limits.admitTcpConnection(stack.size),
    onConnection: (connection, flow) => {
      void connectAndBridge(connection, targets.get(flow.dstPort)!, describeFlow(flow), limits);
    },
  });
  return {
    receive: (packet) => stack.receive(packet),
    close: () => stack.close(),
    counters: stack.counters,
  };
}

/** Bridges an accepted connection to a new connection to `target` until both directions end. */
async function connectAndBridge(
  connection: TcpConnection,
  target: SocketAddress,
  flow: string,
  limits: ConnectorLimits,
): Promise<void> {
  let socket: Deno.TcpConn;
  try {
    socket = await Deno.connect({ hostname: target.hostname, port: target.port });
  } catch (error) {
    connection.abort(`${limits.openFailed("tcp", target, error)}: ${String(error)}`);
    return;
  }
  try {
    // Reads, writes and closeWrite, so a half-close stays a half-close both ways.
    await bridge(connection, socket);
  } catch (error) {
    log.debug("{flow}: bridge ended with {error}", { flow, error: String(error) });
  }
}
