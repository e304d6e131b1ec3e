/** `ztna status` for a relay: the aligned text of a known status document. */
import assert from "node:assert/strict";
import { formatNodeStatus, formatRelayStatus } from "../lib/admin/format.ts";
import type { RelayStatus } from "../lib/admin/relay_status.ts";
import type { EndpointStats } from "../lib/quic/endpoint.ts";

const ENDPOINT: EndpointStats = {
  routedToConnections: 5_120,
  unknownConnectionDropped: 4,
  malformedDropped: 0,
  rawDelivered: 0,
  rawUnclaimed: 0,
  versionNegotiations: 0,
  retries: 3,
  invalidTokens: 1,
  handshakesRefused: 12,
  nonVirtualDropped: 0,
  duplicateVirtualDropped: 0,
  acceptFailures: 0,
  rejectedByQuic: 0,
  connectionsAccepted: 3,
  clientCertificateMissing: 0,
  handshakesTimedOut: 2,
};

const STATUS: RelayStatus = {
  role: "relay",
  listen: "203.0.113.5:4433",
  nodes: 3,
  nodesByRole: { agent: 2, connector: 1 },
  services: { web: 1, db: 1 },
  connectors: { web: ["conn-1"], db: ["conn-1"] },
  stats: {
    nodesConnected: 4,
    nodesRefused: 0,
    nodesReplaced: 1,
    nodesRefusedFull: 0,
    nodesNotReading: 0,
    sessionsOpened: 2,
    sessionsRefused: 1,
    admissionTimeouts: 0,
    sessionLimitHits: 0,
    datagramsForwarded: 1_234,
    bytesForwarded: 890_000,
    droppedNoSession: 7,
    droppedRateLimited: 0,
    droppedPeerQueueFull: 0,
  },
  refusals: { "unknown-service": 2, "access-denied": 1 },
  endpoint: ENDPOINT,
  stun: null,
  sessions: [
    {
      id: "6f1c0a93d2e4b857",
      service: "web",
      agent: "alice",
      connector: "conn-1",
      state: "open",
      agentToConnector: 600,
      agentToConnectorBytes: 90_000,
      connectorToAgent: 634,
      connectorToAgentBytes: 800_000,
    },
    {
      id: "a0b1c2d3e4f50617",
      service: "db",
      agent: "bob",
      connector: "conn-1",
      state: "pending",
      agentToConnector: 0,
      agentToConnectorBytes: 0,
      connectorToAgent: 0,
      connectorToAgentBytes: 0,
    },
  ],
  certificate: {
    file: "/etc/ztna/relay-1.crt",
    notAfter: "2027-01-31T12:00:00.000Z",
    daysLeft: 200,
  },
};

Deno.test("relay status text: nodes by role, services, sessions, forwarding, drops and refusals", () => {
  assert.deepEqual(formatRelayStatus(STATUS), [
    "relay on 203.0.113.5:4433: 3 nodes (2 agents, 1 connector), 2 sessions",
    "certificate /etc/ztna/relay-1.crt valid until 2027-01-31T12:00:00.000Z (200 days)",
    "",
    "SERVICE  CONNECTORS",
    "db       conn-1",
    "web      conn-1",
    "",
    "SESSION           SERVICE  AGENT  CONNECTOR  STATE    AGENT→CONN          CONN→AGENT",
    "6f1c0a93d2e4b857  web      alice  conn-1     open     90.0 KB / 600 pkts  800.0 KB / 634 pkts",
    "a0b1c2d3e4f50617  db       bob    conn-1     pending  0 B / 0 pkts        0 B / 0 pkts",
    "",
    "forwarded   1234 packets, 890.0 KB",
    "dropped     no session 7",
    "refused     access-denied 1, unknown-service 2",
    "sessions    2 opened; refused: by connectors 1",
    "nodes       4 admitted; refused: none; closed: replaced 1",
    "handshakes  3 accepted; refused: handshake bounds 12, timed out 2, invalid retry token 1",
  ]);
});

Deno.test("relay status text: an idle relay, and a certificate about to expire", () => {
  const idle = formatRelayStatus({
    ...STATUS,
    nodes: 0,
    nodesByRole: { agent: 0, connector: 0 },
    services: {},
    connectors: {},
    sessions: [],
    certificate: { file: "relay.crt", notAfter: "2026-12-01T00:00:00.000Z", daysLeft: 9 },
  });
  assert.deepEqual(idle.slice(0, 6), [
    "relay on 203.0.113.5:4433: 0 nodes (0 agents, 0 connectors), 0 sessions",
    "certificate relay.crt expires in 9 days, at 2026-12-01T00:00:00.000Z: renew it",
    "",
    "no services published",
    "",
    "no sessions",
  ]);
});

Deno.test("node status text: the certificate's expiry follows the NAT line", () => {
  const lines = formatNodeStatus({
    role: "connector",
    services: ["web"],
    relay: {
      address: "203.0.113.5:4433",
      connected: true,
      rttMs: 1.5,
      observed: "192.0.2.9:40000",
      reconnects: 2,
    },
    nat: null,
    sessions: [],
    certificate: { file: "conn-1.crt", notAfter: null, daysLeft: null, error: "no such file" },
  });
  assert.deepEqual(lines, [
    "connector for web; relay 203.0.113.5:4433 (rtt 1.50 ms, sees us at 192.0.2.9:40000, 2 reconnects)",
    "NAT not measured (the relay answers no STUN, or the check has not finished)",
    "certificate conn-1.crt: no such file",
    "",
    "no sessions",
  ]);
});
