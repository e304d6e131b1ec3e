/** `ztna demo`'s report: iputils ping summaries and the text an operator reads. */
import assert from "node:assert/strict";
import { parsePing } from "../lib/demo/ping.ts";
import { type DemoReport, formatReport, reportJson } from "../lib/demo/report.ts";

const PING_OK = `PING 100.80.0.10 (100.80.0.10) 56(84) bytes of data.
64 bytes from 100.80.0.10: icmp_seq=1 ttl=64 time=0.912 ms

--- 100.80.0.10 ping statistics ---
5 packets transmitted, 5 received, 0% packet loss, time 815ms
rtt min/avg/max/mdev = 0.512/0.693/0.912/0.140 ms
`;

const PING_LOST = `--- 100.80.0.10 ping statistics ---
5 packets transmitted, 0 received, 100% packet loss, time 4093ms
`;

Deno.test("ping summary: counts and min/avg/max, or no RTT when nothing came back", () => {
  assert.deepEqual(parsePing(PING_OK), {
    sent: 5,
    received: 5,
    minMs: 0.512,
    avgMs: 0.693,
    maxMs: 0.912,
  });
  assert.deepEqual(parsePing(PING_LOST), {
    sent: 5,
    received: 0,
    minMs: null,
    avgMs: null,
    maxMs: null,
  });
  assert.throws(() => parsePing("ping: connect: Network is unreachable\n"), /unexpected ping/);
});

const RELAY_PATH: DemoReport["path"] = [
  { hop: "agent", address: "10.200.1.2" },
  { hop: "agent-nat", address: "198.18.2.2:40312" },
  { hop: "relay", address: "198.18.1.2:4433" },
  { hop: "connector-nat", address: "198.18.3.2:51234" },
  { hop: "connector", address: "10.200.2.2" },
  { hop: "web", address: "127.0.0.1:8080" },
];

const REPORT: DemoReport = {
  topology: "ztnademo-1a2b",
  service: { name: "web", ip: "100.80.0.10" },
  path: RELAY_PATH.filter((hop) => hop.hop !== "relay"),
  relayPath: RELAY_PATH,
  direct: { address: "198.18.3.2:51234", afterMs: 412 },
  relayAfterMs: 371,
  http: { url: "http://100.80.0.10:8080/", status: 200, bytes: 345, ms: 12.345 },
  ping: { sent: 5, received: 5, minMs: 0.5, avgMs: 0.7, maxMs: 0.9 },
  setupMs: 2345,
};

Deno.test("demo report: the path, how it got there, HTTP, RTT and setup time as text and JSON", () => {
  const text = formatReport(REPORT);
  assert.match(
    text,
    /path {4}agent 10\.200\.1\.2 → NAT 198\.18\.2\.2:40312 → NAT 198\.18\.3\.2:51234 → connector 10\.200\.2\.2 → web 127\.0\.0\.1:8080\n/,
  );
  assert.match(text, /direct, peer to peer .* it started via the relay 198\.18\.1\.2:4433\n/);
  assert.match(text, /timing {2}agent start → session up via the relay 0\.37 s → direct 0\.41 s\n/);
  assert.match(text, /http {4}200, 345 bytes in 12\.3 ms/);
  assert.match(text, /ping {4}5\/5 replies, RTT min\/avg\/max 0\.5\/0\.7\/0\.9 ms/);
  assert.match(text, /setup {3}2\.35 s .*ztnademo-1a2b-\*/);
  const relayed = formatReport({ ...REPORT, path: RELAY_PATH, direct: null });
  assert.match(relayed, /path {4}agent .* → relay 198\.18\.1\.2:4433 → /);
  assert.match(relayed, /via the relay 198\.18\.1\.2:4433: no direct path was found/);
  assert.match(relayed, /timing {2}agent start → session up via the relay 0\.37 s\n/);
  const json = JSON.parse(reportJson(REPORT));
  assert.deepEqual({ ...json, pathText: undefined }, { ...REPORT, pathText: undefined });
  assert.match(json.pathText, /^agent 10\.200\.1\.2 → NAT /);
});
