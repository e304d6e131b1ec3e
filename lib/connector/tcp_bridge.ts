/**
 * TCP for the connector: the userspace TCP stack accepts agents' connections
 * to forwarded ports (others get a RST) and each one is bridged, both ways and
 * with half-close, to a real TCP connection to the port's forward target. Its
 * MSS follows the tunnel MTU, so every segment fits one session DATAGRAM.
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, type SocketAddress } from "../net/address.ts";
import { bridge, describeFlow, type TcpConnection, TcpStack } from "../tcp/mod.ts";
import { TUNNEL_MTU } from "../node/configs.ts";
import type { TcpHandler } from "./terminator.ts";

const log = getLogger(["ztna", "connector", "tcp"]);

/** Receive window of each bridged TCP connection. */
const TCP_RECEIVE_WINDOW = 1 << 20;

/** Makes the TCP handler of one session: `send` carries packets back to the agent. */
export function tcpHandler(
  send: (packet: Uint8Array) => void,
  targets: Map<number, SocketAddress>,
): TcpHandler {
  const stack = new TcpStack({
    mtu: TUNNEL_MTU,
    // A single stream moves at most one window per round trip; through a relay the RTT is
    // a few ms, so 256 KiB would cap it near 0.4 Gbit/s. Unread data is bounded by this.
    receiveWindow: TCP_RECEIVE_WINDOW,
    send,
    accept: (flow) => targets.has(flow.dstPort),
    onConnection: (connection, flow) => {
      void connectAndBridge(connection, targets.get(flow.dstPort)!, describeFlow(flow));
    },
  });
  return {
    receive: (packet) => stack.receive(packet),
    close: () => stack.close(),
  };
}

/** Bridges an accepted connection to a new connection to `target` until both directions end. */
async function connectAndBridge(connection: TcpConnection, target: SocketAddress, flow: string) {
  let socket: Deno.TcpConn;
  try {
    socket = await Deno.connect({ hostname: target.hostname, port: target.port });
  } catch (error) {
    log.info("{flow}: cannot reach {target}: {error}", {
      flow,
      target: formatAddress(target),
      error: String(error),
    });
    connection.abort(`forward target ${formatAddress(target)} unreachable`);
    return;
  }
  try {
    // Reads, writes and closeWrite, so a half-close stays a half-close both ways.
    await bridge(connection, socket);
  } catch (error) {
    log.debug("{flow}: bridge ended with {error}", { flow, error: String(error) });
  }
}
