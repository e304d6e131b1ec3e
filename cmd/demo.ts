/** `ztna demo`: relay, connector, agent and a web server in namespaces; a page through the tunnel. */
import { integerOption } from "../lib/cli/args.ts";
import { defineCommand } from "../lib/cli/command.ts";
import { ExitCode } from "../lib/cli/errors.ts";
import { abortOnSignals, DemoInterrupted } from "../lib/demo/interrupt.ts";
import { checkPrerequisites, isRoot, NEEDS_ROOT } from "../lib/demo/preflight.ts";
import { formatReport, reportJson } from "../lib/demo/report.ts";
import { runDemo } from "../lib/demo/run.ts";
import { DEMO, DEMO_URL } from "../lib/demo/settings.ts";

const USAGE = `Usage: ztna demo [--keep-going-ms N] [--json]

Shows ztna's main job on this machine, with nothing to configure: creates a
throwaway CA and identities, builds network namespaces (a relay on a public
network, an agent and a connector each behind its own NAT), starts the relay,
a web server on ${DEMO.web.host}:${DEMO.web.port} next to the connector, the connector and the
agent (TUN ${DEMO.tun}, service ${DEMO.names.service} at ${DEMO.serviceIp}), then pings the service
and fetches ${DEMO_URL} through the tunnel. Prints the path packets took (NAT
addresses as the relay observed them), the HTTP status and size, the ping RTT and
the time it took to bring everything up, and removes everything it created,
also on Ctrl-C. Needs root, ip (iproute2), iptables and ping; runs from a source
checkout.

Options:
  --keep-going-ms N    keep everything up N ms after the report, to try it by hand
                       (default 0)
  --json               print the report as JSON

Progress goes to stderr; the report to stdout.
Exit status: 0 the page came through, 1 failure, 2 usage error, 130 interrupted (Ctrl-C).`;

export const command = defineCommand({
  usage: USAGE,
  options: {
    "keep-going-ms": { type: "string" },
    json: { type: "boolean" },
  },
  async run({ values }) {
    const keepGoingMs = integerOption(values["keep-going-ms"], "keep-going-ms", 0, 0);
    if (!isRoot()) {
      console.error(NEEDS_ROOT);
      Deno.exit(ExitCode.failure);
    }
    await checkPrerequisites();
    const interrupt = abortOnSignals();
    try {
      await runDemo({
        keepGoingMs,
        signal: interrupt.signal,
        onReport(report, topology) {
          console.log(values.json ? reportJson(report) : formatReport(report));
          if (keepGoingMs > 0 && !values.json) {
            console.log(
              `\nKeeping everything up for ${keepGoingMs} ms (Ctrl-C ends it sooner). Try:\n` +
                `  ip netns exec ${topology.agent.netns} curl ${DEMO_URL}\n` +
                `  ip netns exec ${topology.agent.netns} ping ${DEMO.serviceIp}`,
            );
          }
        },
      });
    } catch (error) {
      if (!(error instanceof DemoInterrupted)) throw error;
      console.error(`ztna demo: ${error.message}; everything it created is removed`);
      Deno.exit(error.exitCode);
    } finally {
      interrupt.dispose();
    }
  },
});
