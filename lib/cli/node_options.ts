/** Command-line options every node (connector, agent) shares: its relay and its identity. */
import { UsageError } from "./errors.ts";
import { requireOption } from "./args.ts";
import { type HostPort, isIpLiteral, parseHostNamePort } from "../net/resolve.ts";
import type { NodeIdentity } from "../node/configs.ts";

/** parseArgs declarations of the shared node options. */
export const NODE_OPTIONS = {
  relay: { type: "string" },
  "relay-name": { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  ca: { type: "string" },
  "relay-only": { type: "boolean" },
} as const;

/** Usage lines of the shared node options. */
export const NODE_OPTIONS_USAGE =
  `  --relay HOST:PORT    the relay to dial (required): a host name (resolved on every
                       connection attempt, each address tried in turn), an IPv4
                       address or [IPv6]:PORT
  --relay-name NAME    name in the relay's certificate (default the host name of
                       --relay; required when --relay is an IP address)
  --cert FILE          this node's certificate, from 'ztna identity issue' (required)
  --key FILE           its private key (required)
  --ca FILE            the organisation's CA certificate (required)
  --relay-only         keep sessions on the relay: no hole punching, no direct path`;

/** The relay address and name and the node identity from parsed options. */
export function nodeOptions(
  values: Partial<Record<Exclude<keyof typeof NODE_OPTIONS, "relay-only">, string>> & {
    "relay-only"?: boolean;
  },
): {
  relay: HostPort;
  relayName: string;
  identity: NodeIdentity;
  relayOnly: boolean;
} {
  const relay = relayOption(values.relay);
  return {
    relay,
    relayName: relayName(relay, values["relay-name"]),
    relayOnly: values["relay-only"] === true,
    identity: {
      certificateFile: requireOption(values.cert, "cert"),
      privateKeyFile: requireOption(values.key, "key"),
      caFile: requireOption(values.ca, "ca"),
    },
  };
}

/** Parses --relay: a host name or an IP literal, and a port. */
function relayOption(value: string | undefined): HostPort {
  const text = requireOption(value, "relay");
  try {
    return parseHostNamePort(text);
  } catch (error) {
    throw new UsageError(`--relay: ${(error as Error).message}`);
  }
}

/** --relay-name, or the host name of --relay (without a trailing dot); an IP literal needs the flag. */
function relayName(relay: HostPort, value: string | undefined): string {
  if (value !== undefined && value !== "") return value;
  if (isIpLiteral(relay.hostname)) {
    throw new UsageError(
      `missing required option --relay-name: --relay ${relay.hostname} is an IP address, ` +
        "so give the name in the relay's certificate",
    );
  }
  return relay.hostname.replace(/\.$/, "");
}
