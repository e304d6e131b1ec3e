/**
 * `ztna status`: the aligned text of a status document, and the admin socket
 * (owner-only, one JSON document per connection, a live socket never taken
 * over, a stale one replaced).
 */
import assert from "node:assert/strict";
import { AdminServer, AdminSocketInUseError } from "../lib/admin/server.ts";
import { AdminUnreachableError, readStatus } from "../lib/admin/client.ts";
import { formatAge, formatBytes, formatNodeStatus } from "../lib/admin/format.ts";
import type { NodeStatus } from "../lib/admin/node_status.ts";
import type { SessionStatus } from "../lib/session/session.ts";

const SESSION = {
  id: "6f1c0a93d2e4b857",
  service: "web",
  role: "agent",
  peer: "conn-1",
  path: "direct 198.51.100.7:40211",
  pathAgeMs: 62_000,
  rttMs: 0.41,
  paths: [
    {
      path: "relay",
      active: false,
      state: "validated",
      rttMs: 2.1,
      packetsSent: 14,
      packetsReceived: 13,
      bytesSent: 4_200,
      bytesReceived: 4_700,
    },
    {
      path: "10.1.0.5:40211",
      active: false,
      state: "validating",
      rttMs: 333,
      packetsSent: 7,
      packetsReceived: 0,
      bytesSent: 9_000,
      bytesReceived: 0,
    },
    {
      path: "198.51.100.7:40211",
      active: true,
      state: "validated",
      rttMs: 0.41,
      packetsSent: 981,
      packetsReceived: 2_104,
      bytesSent: 1_200_000,
      bytesReceived: 3_400_000,
    },
  ],
} as unknown as SessionStatus;

const STATUS: NodeStatus = {
  role: "agent",
  services: ["web"],
  relay: {
    address: "203.0.113.5:4433",
    connected: true,
    rttMs: 1.77,
    observed: "192.0.2.44:51000",
    reconnects: 0,
  },
  nat: {
    classic: "port-restricted cone",
    mapping: "endpoint-independent",
    filtering: "address-and-port-dependent",
    public: ["192.0.2.44:51000"],
  },
  sessions: [SESSION],
};

Deno.test("status text: the relay link, then one aligned row per session and per path", () => {
  assert.deepEqual(formatNodeStatus(STATUS), [
    "agent for web; relay 203.0.113.5:4433 (rtt 1.77 ms, sees us at 192.0.2.44:51000, 0 reconnects)",
    "NAT port-restricted cone (mapping endpoint-independent, filtering address-and-port-dependent)",
    "",
    "SERVICE  PEER    PATH                                RTT      FOR   SENT               RECEIVED",
    "web      conn-1  direct 198.51.100.7:40211           0.41 ms  1m2s  1.2 MB             3.4 MB",
    "           path  relay                               2.10 ms        4.2 KB / 14 pkts   4.7 KB / 13 pkts",
    "           path  direct 10.1.0.5:40211 (validating)  -              9.0 KB / 7 pkts    0 B / 0 pkts",
    "         * path  direct 198.51.100.7:40211           0.41 ms        1.2 MB / 981 pkts  3.4 MB / 2104 pkts",
  ]);
  const down = formatNodeStatus({
    ...STATUS,
    relay: { ...STATUS.relay, connected: false },
    nat: null,
    sessions: [],
  });
  assert.deepEqual(down, [
    "agent for web; relay 203.0.113.5:4433 (not connected; reconnecting)",
    "NAT not measured (the relay answers no STUN, or the check has not finished)",
    "",
    "no sessions",
  ]);
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(1_500_000_000), "1.5 GB");
  assert.equal(formatAge(7_500_000), "2h5m");
});

Deno.test("admin socket: 0600, one JSON document per connection, live sockets kept, stale ones replaced", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ztna-admin-" });
  const path = `${dir}/run/agent.sock`;
  try {
    let calls = 0;
    const server = await AdminServer.listen(path, () => ({ role: "agent", calls: ++calls }));
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${dir}/run`)).mode! & 0o777, 0o700);
    assert.deepEqual(await readStatus(path), { role: "agent", calls: 1 });
    assert.deepEqual(await readStatus(path), { role: "agent", calls: 2 });
    await assert.rejects(AdminServer.listen(path, () => ({})), AdminSocketInUseError);
    // The refused second daemon's liveness check was answered too (call 3).
    assert.deepEqual(await readStatus(path), { role: "agent", calls: 4 }, "the first answers");
    await server.close();
    await assert.rejects(readStatus(path), AdminUnreachableError);
    // A socket file left behind by a daemon that died: replaced.
    const stale = Deno.listen({ transport: "unix", path });
    stale.close();
    const again = await AdminServer.listen(path, () => ({ role: "connector" }));
    assert.deepEqual(await readStatus(path), { role: "connector" });
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
