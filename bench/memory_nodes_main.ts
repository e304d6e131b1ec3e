/**
 * `deno run -A bench/memory_nodes_main.ts --relay HOST:PORT --relay-name NAME --ca FILE PREFIX...`:
 * holds one relay-only agent node per identity (`PREFIX.crt`, `PREFIX.key`) connected to the
 * relay, for the memory suite; prints `ready N` once all are connected and closes them when
 * stdin ends. The suite spreads its nodes over several of these processes: each node's socket
 * keeps a `poll` running on one of Deno's blocking threads, and one process runs out of them
 * after a few dozen nodes.
 */
import { parseArgs } from "node:util";
import { parseHostPort } from "../lib/net/address.ts";
import { Node } from "../lib/node/node.ts";

const { values, positionals } = parseArgs({
  options: {
    relay: { type: "string" },
    "relay-name": { type: "string" },
    ca: { type: "string" },
  },
  allowPositionals: true,
});
if (!values.relay || !values["relay-name"] || !values.ca || positionals.length === 0) {
  console.error(
    "usage: memory_nodes_main.ts --relay HOST:PORT --relay-name NAME --ca FILE PREFIX...",
  );
  Deno.exit(2);
}
const nodes: Node[] = [];
for (const prefix of positionals) {
  const node = new Node({
    identity: {
      certificateFile: `${prefix}.crt`,
      privateKeyFile: `${prefix}.key`,
      caFile: values.ca,
    },
    relay: parseHostPort(values.relay),
    relayName: values["relay-name"],
    role: "agent",
    bind: { hostname: "127.0.0.1", port: 0 },
    relayOnly: true,
  });
  nodes.push(node);
  await node.start();
}
console.log(`ready ${nodes.length}`);
for await (const _ of Deno.stdin.readable) {
  // Until the suite closes stdin.
}
for (const node of nodes) await node.close();
