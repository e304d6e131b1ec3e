/**
 * Test identities for relay tests: a CA, a relay, connectors and agents with ztna grants;
 * and nodes in the test process that connect to a relay with them.
 */
import type { SocketAddress } from "../../lib/net/address.ts";
import type { NodeIdentity } from "../../lib/node/configs.ts";
import { Node } from "../../lib/node/node.ts";
import type { RelayLink, SessionAssignment } from "../../lib/node/relay_link.ts";
import { createCa, grantNames, issueIdentity, writeIdentityFiles } from "../../lib/pki/mod.ts";
import type { Connection } from "../../lib/quic/connection.ts";
import type { Endpoint } from "../../lib/quic/endpoint.ts";
import { SIGNAL_STREAM_ID } from "../../lib/session/signals.ts";
import type { SessionTableLimits } from "../../lib/session/session_table.ts";
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
        // Valid from a day before its end, or from an hour ago if that is earlier.
        ...(notAfter
          ? {
            notBefore: new Date(Math.min(notAfter.getTime() - 86_400_000, Date.now() - 3_600_000)),
            notAfter,
          }
          : {}),
      });
      return await writeIdentityFiles(identity, dir, name);
    },
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Issues a node identity in `org` and returns it as the files a node is given. */
export async function nodeIdentity(
  org: TestOrg,
  name: string,
  role: "relay" | "connector" | "agent",
  services: string[] = [],
  notAfter?: Date,
): Promise<NodeIdentity> {
  const files = await org.issue(name, role, services, notAfter);
  return { certificateFile: files.certPath, privateKeyFile: files.keyPath, caFile: org.caPath };
}

/** A node in the test process, on loopback: its Node and what it saw. */
export interface TestNode {
  node: Node;
  endpoint: Endpoint;
  link: RelayLink;
  /** The sessions a connector admitted (each echoes DATAGRAMs and streams). */
  accepted: Connection[];
  /** Addresses the relay reported for this node (QAD), in order. */
  observed: string[];
  /** Sessions the relay announced to a connector. */
  announced: SessionAssignment[];
}

/**
 * A node on 127.0.0.1 dialling `relay` by `serverName`; a connector admits
 * every announced session and echoes it. Not started: call `node.start()` or
 * `link.start()`. `relayOnly` keeps sessions off direct paths; `sessionLimits`
 * bound a connector's sessions.
 */
export function startNode(
  relay: SocketAddress,
  identity: NodeIdentity,
  role: "connector" | "agent",
  options: {
    serverName?: string;
    relayOnly?: boolean;
    sessionLimits?: SessionTableLimits;
    /** Connector: agents it accepts (default: every one). */
    allow?: string[];
    /** The node's socket address (default 127.0.0.1, any port). */
    bind?: SocketAddress;
  } = {},
): TestNode {
  const accepted: Connection[] = [];
  const node = new Node({
    identity,
    relay,
    relayName: options.serverName ?? RELAY_NAME,
    role,
    bind: options.bind ?? { hostname: "127.0.0.1", port: 0 },
    relayOnly: options.relayOnly,
    sessionLimits: options.sessionLimits,
    acceptAgent: options.allow
      ? (agent) => options.allow!.includes(agent) ? null : "not in the access list"
      : undefined,
    onAdmitted: (_session, connection) => {
      accepted.push(connection);
      echo(connection, (stream) => stream.id === SIGNAL_STREAM_ID);
    },
  });
  const observed: string[] = [];
  const announced: SessionAssignment[] = [];
  node.link.onObserved((address) => observed.push(address));
  node.link.onSession((assignment) => announced.push(assignment));
  return { node, endpoint: node.endpoint, link: node.link, accepted, observed, announced };
}

/** Closes the node (sessions, link, socket, configs). */
export async function stopNode(node: TestNode): Promise<void> {
  await node.node.close();
}

/** Opens a session from `agent` to `service`; resolves once the connector admitted it. */
export async function openSession(agent: TestNode, service: string): Promise<Connection> {
  return (await agent.node.openSession(service)).connection!;
}
