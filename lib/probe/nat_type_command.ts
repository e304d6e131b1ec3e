/** `ztna probe nat-type --relay HOST:PORT`: classifies the NAT in front of this host (RFC 5780). */
import { integerOption, requireOption } from "../cli/args.ts";
import { defineCommand } from "../cli/command.ts";
import { UsageError } from "../cli/errors.ts";
import { parseHostPort, type SocketAddress } from "../net/address.ts";
import { type HostPort, parseHostNamePort } from "../net/resolve.ts";
import { DEFAULT_TIMEOUT_MS } from "../natcheck/schedule.ts";
import { probeNatType } from "./nat_type.ts";
import { formatNatTypeReport } from "./nat_type_report.ts";

const USAGE =
  `Usage: ztna probe nat-type --relay HOST:PORT [--json] [--timeout-ms N] [--bind HOST:PORT]

Classifies the NAT in front of this host the RFC 5780 way, with STUN Binding
requests to the relay (which answers STUN on its QUIC port) or to any RFC 5780
STUN server: its mapping and its filtering, each endpoint-independent,
address-dependent or address-and-port-dependent (RFC 4787); the classic name
(open / no NAT, full cone, restricted cone, port-restricted cone, symmetric);
the public address(es) the server saw; whether hairpinning works; and which
test got which answer. A server without an alternate address (relay started
without --alt-address/--alt-port) cannot answer the tests that tell the kinds
apart: the probe says which parts it could not determine.

Options:
  --relay HOST:PORT    the relay (or STUN server), e.g. relay.example.com:4433 or
                       203.0.113.5:4433 (required); a host name's addresses are
                       tried in turn until one answers
  --timeout-ms N       wait N ms for an address's first answer (default ${DEFAULT_TIMEOUT_MS})
  --bind HOST:PORT     local address to probe from (default the wildcard, port 0)
  --json               print one JSON object instead of text

Exit status: 0 classified (even partly), 1 the server never answered (or only
with an error), 2 usage error.`;

function address(value: string | undefined, flag: string): SocketAddress | undefined {
  if (value === undefined) return undefined;
  try {
    return parseHostPort(value);
  } catch (error) {
    throw new UsageError(`invalid --${flag}: ${(error as Error).message}`);
  }
}

function relayAddress(value: string): HostPort {
  try {
    return parseHostNamePort(value);
  } catch (error) {
    throw new UsageError(`invalid --relay: ${(error as Error).message}`);
  }
}

/** The `nat-type` probe, over the arguments after `ztna probe nat-type`. */
export const command = defineCommand({
  usage: USAGE,
  allowPositionals: true,
  options: {
    relay: { type: "string" },
    "timeout-ms": { type: "string" },
    bind: { type: "string" },
    json: { type: "boolean" },
  },
  async run({ values, positionals }) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const server = relayAddress(requireOption(values.relay, "relay"));
    if (server.port === 0) throw new UsageError("invalid --relay: port 0");
    const timeoutMs = integerOption(values["timeout-ms"], "timeout-ms", DEFAULT_TIMEOUT_MS);
    const result = await probeNatType({ server, timeoutMs, bind: address(values.bind, "bind") });
    console.log(values.json ? JSON.stringify(result) : formatNatTypeReport(result));
  },
});
