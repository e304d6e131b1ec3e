/**
 * `ztna`: the zero-trust network access toolkit's executable. Dispatches to
 * the commands in cmd/; see `ztna --help`.
 */
import type { CommandRegistry } from "./lib/cli/command.ts";
import { runCli } from "./lib/cli/run.ts";

/** Implemented commands; adding one is one line. */
export const COMMANDS: CommandRegistry = {
  connector: {
    summary: "publish a private service through the relay (no root)",
    load: () => import("./cmd/connector.ts"),
  },
  agent: {
    summary: "reach services through a TUN device (root or CAP_NET_ADMIN)",
    load: () => import("./cmd/agent.ts"),
  },
  probe: {
    summary:
      "diagnostics: a QUIC service (quic), the NAT in front of this host (nat-type), a service through a session (ping)",
    load: () => import("./cmd/probe.ts"),
  },
  identity: {
    summary: "create the organisation's CA and issue relay, connector and agent identities",
    load: () => import("./cmd/identity.ts"),
  },
  relay: {
    summary: "run the relay that connectors and agents dial out to",
    load: () => import("./cmd/relay.ts"),
  },
  status: {
    summary: "show what a running agent, connector or relay on this host is doing",
    load: () => import("./cmd/status.ts"),
  },
  demo: {
    summary: "bring up relay, connector, agent and a web server in namespaces; fetch a page (root)",
    load: () => import("./cmd/demo.ts"),
  },
};

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args, COMMANDS));
}
