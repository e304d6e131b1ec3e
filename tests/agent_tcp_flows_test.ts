/**
 * OpenTcpFlows: the agent learns the host's TCP flows from its SYNs, forgets
 * them on its RSTs, keeps at most its bound, and builds for each flow to a
 * service a valid out-of-window ACK from the service, and nothing for others.
 */
import assert from "node:assert/strict";
import {
  formatIpAddress,
  isPacketError,
  parseIp,
  parseIpAddress,
  parseTcp,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
} from "../lib/packet/mod.ts";
import { buildSegment } from "../lib/tcp/segment.ts";
import { OpenTcpFlows } from "../lib/agent/open_tcp_flows.ts";

const HOST = parseIpAddress("10.9.0.2");
const SERVICE = "100.80.0.10";
const OTHER = "100.80.0.11";

/** A segment the host sends from `port` to `service`:80. */
function fromHost(service: string, port: number, flags: number, host = HOST): Uint8Array {
  return buildSegment(
    { local: host, remote: parseIpAddress(service), localPort: port, remotePort: 80 },
    { seq: 1000, ack: flags & TCP_ACK ? 5 : 0, flags, window: 1000 },
  );
}

Deno.test("OpenTcpFlows: SYNs open, RSTs close, the bound drops the oldest; probes are valid ACKs from the service", () => {
  const flows = new OpenTcpFlows(3);
  flows.outgoing(fromHost(SERVICE, 40001, TCP_SYN));
  flows.outgoing(fromHost(SERVICE, 40001, TCP_SYN)); // a retransmitted SYN: still one flow
  flows.outgoing(fromHost(SERVICE, 40002, TCP_SYN));
  flows.outgoing(fromHost(OTHER, 40003, TCP_SYN));
  assert.equal(flows.size, 3);
  // Data, ACKs, FINs and SYN-ACKs change nothing.
  flows.outgoing(fromHost(SERVICE, 40009, TCP_ACK));
  flows.outgoing(fromHost(SERVICE, 40009, TCP_SYN | TCP_ACK));
  flows.outgoing(fromHost(SERVICE, 40002, TCP_FIN | TCP_ACK));
  assert.equal(flows.size, 3);
  // A RST from the host ends its flow.
  flows.outgoing(fromHost(SERVICE, 40002, TCP_RST | TCP_ACK));
  assert.equal(flows.size, 2);
  // Past the bound the oldest flow (40001) goes.
  flows.outgoing(fromHost(SERVICE, 40004, TCP_SYN));
  flows.outgoing(fromHost(SERVICE, 40005, TCP_SYN));
  assert.equal(flows.size, 3);

  const probes = flows.probes(SERVICE);
  assert.equal(probes.length, 2, "40004 and 40005; not the flow to the other service");
  const seen = probes.map((probe) => {
    const ip = parseIp(probe);
    assert.ok(!isPacketError(ip));
    const seg = parseTcp(ip);
    assert.ok(!isPacketError(seg), `a valid TCP segment (checksum verified): ${seg}`);
    assert.equal(formatIpAddress(ip.src), SERVICE);
    assert.equal(formatIpAddress(ip.dst), "10.9.0.2");
    assert.equal(seg.srcPort, 80);
    assert.equal(seg.flags, TCP_ACK);
    return seg.dstPort;
  });
  assert.deepEqual(seen.sort(), [40004, 40005]);
  assert.equal(flows.size, 1, "probed flows are forgotten");
  assert.deepEqual(flows.probes(SERVICE), []);
  assert.equal(flows.probes(OTHER).length, 1);
});

Deno.test("OpenTcpFlows: IPv6 flows, and packets that are not TCP or are fragments, are handled", () => {
  const flows = new OpenTcpFlows();
  const host6 = parseIpAddress("fd00::2");
  flows.outgoing(buildSegment(
    { local: host6, remote: parseIpAddress("fd7a::10"), localPort: 5555, remotePort: 443 },
    { seq: 1, ack: 0, flags: TCP_SYN, window: 1000 },
  ));
  assert.equal(flows.size, 1);
  const udp = fromHost(SERVICE, 40001, TCP_SYN);
  udp[9] = 17;
  flows.outgoing(udp);
  const fragment = fromHost(SERVICE, 40002, TCP_SYN);
  fragment[7] = 1;
  flows.outgoing(fragment);
  flows.outgoing(new Uint8Array(10));
  assert.equal(flows.size, 1);
  const [probe] = flows.probes("fd7a::10");
  const ip = parseIp(probe);
  assert.ok(!isPacketError(ip) && !isPacketError(parseTcp(ip)));
});
