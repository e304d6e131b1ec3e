/**
 * Test identities for relay tests: a CA, a relay, connectors and agents with ztna grants;
 * and nodes in the test process that connect to a relay with them.
 */
import type { SocketAddress } from "../../lib/net/address.ts";
import { type NodeIdentity, relayClientConfig, sessionConfig } from "../../lib/node/configs.ts";
import { RelayLink } from "../../lib/node/relay_link.ts";
import {
  createCa,
  grantNames,
  issueIdentity,
  serviceServerName,
  writeIdentityFiles,
} from "../../lib/pki/mod.ts";
import type { QuicConfig } from "../../lib/quic/config.ts";
import type { Connection } from "../../lib/quic/connection.ts";
import { Endpoint } from "../../lib/quic/endpoint.ts";
import type { IdentityFiles } from "./certificates.ts";
import { echo } from "./echo.ts";

/** The relay's DNS name in test certificates. */
export const RELAY_NAME = "relay.test";

/** A test organisation: its CA file and a folder to issue identities into. */
export interface TestOrg {
  dir: string;
  caPath: string;
  /** Issues an identity; `notAfter` in the past makes an expired one. */
  issue(
    name: string,
    role: "relay" | "connector" | "agent",
    services?: string[],
    notAfter?: Date,
  ): Promise<IdentityFiles>;
  cleanup(): Promise<void>;
}

/** Creates a CA in a temp folder. */
export async function makeTestOrg(label = "org"): Promise<TestOrg> {
  const dir = await Deno.makeTempDir({ prefix: `ztna-${label}-` });
  const ca = await createCa({ commonName: `ztna ${label} CA` });
  const { certPath: caPath } = await writeIdentityFiles(ca, dir, "ca");
  return {
    dir,
    caPath,
    async issue(name, role, services = [], notAfter) {
      const hostNames = role === "relay" ? [RELAY_NAME] : [];
      const identity = await issueIdentity(ca, {
        commonName: name,
        ...grantNames(name, role, services, hostNames),
        ...(notAfter ? { notBefore: new Date(notAfter.getTime() - 86_400_000), notAfter } : {}),
      });
      return await writeIdentityFiles(identity, dir, name);
    },
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** A node in the test process: its endpoint, relay link and the configs to free. */
export interface TestNode {
  endpoint: Endpoint;
  link: RelayLink;
  /** The relay client config, then the session config. */
  configs: QuicConfig[];
  /** The sessions a connector accepted. */
  accepted: Connection[];
}

/**
 * Starts a node dialling `relay` by `serverName`; a connector also accepts
 * sessions and echoes them. The link is not started.
 */
export function startNode(
  relay: SocketAddress,
  identity: NodeIdentity,
  role: "connector" | "agent",
  serverName = RELAY_NAME,
): TestNode {
  const relayConfig = relayClientConfig(identity);
  const session = sessionConfig(identity);
  const accepted: Connection[] = [];
  const endpoint = Endpoint.bind({
    address: { hostname: "127.0.0.1", port: 0 },
    server: role === "connector"
      ? { config: session, onConnection: (c) => (accepted.push(c), echo(c)) }
      : undefined,
  });
  const link: RelayLink = new RelayLink({
    endpoint,
    relay,
    serverName,
    config: relayConfig,
    role,
    onSession: (assignment) => link.attachSession(assignment),
  });
  return { endpoint, link, configs: [relayConfig, session], accepted };
}

/** Closes the node's link and endpoint and frees its configs. */
export async function stopNode(node: TestNode): Promise<void> {
  node.link.close();
  await node.endpoint.close();
  for (const config of node.configs) config.free();
}

/** Opens a session from `agent` to `service` and connects the QUIC session through it. */
export async function openSession(agent: TestNode, service: string): Promise<Connection> {
  const assignment = await agent.link.openSession(service);
  const peer = agent.link.attachSession(assignment);
  const connection = agent.endpoint.connect({
    peer: peer.address,
    serverName: serviceServerName(service),
    config: agent.configs[1],
  });
  await connection.established;
  return connection;
}
