/** Command-line options every node (connector, agent) shares: its relay and its identity. */
import { UsageError } from "./errors.ts";
import { requireOption } from "./args.ts";
import { parseHostPort, type SocketAddress } from "../net/address.ts";
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
export const NODE_OPTIONS_USAGE = `  --relay HOST:PORT    the relay to dial (required)
  --relay-name NAME    name in the relay's certificate (required)
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
  relay: SocketAddress;
  relayName: string;
  identity: NodeIdentity;
  relayOnly: boolean;
} {
  let relay: SocketAddress;
  try {
    relay = parseHostPort(requireOption(values.relay, "relay"));
  } catch (error) {
    throw error instanceof UsageError
      ? error
      : new UsageError(`--relay: ${(error as Error).message}`);
  }
  return {
    relay,
    relayName: requireOption(values["relay-name"], "relay-name"),
    relayOnly: values["relay-only"] === true,
    identity: {
      certificateFile: requireOption(values.cert, "cert"),
      privateKeyFile: requireOption(values.key, "key"),
      caFile: requireOption(values.ca, "ca"),
    },
  };
}
