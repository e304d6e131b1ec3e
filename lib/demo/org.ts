/** The demo's throwaway organisation: a CA, the relay, a connector and an agent, as files. */
import { createCa, grantNames, issueIdentity, writeIdentityFiles } from "../pki/mod.ts";

/** Paths of one identity's PEM files. */
export interface IdentityPaths {
  certPath: string;
  keyPath: string;
}

/** Who the demo's nodes are. */
export interface DemoNames {
  relay: string;
  /** The DNS name nodes dial the relay by (in its certificate). */
  relayHost: string;
  connector: string;
  agent: string;
  service: string;
}

/** The organisation's files. */
export interface DemoOrg {
  caPath: string;
  relay: IdentityPaths;
  connector: IdentityPaths;
  agent: IdentityPaths;
}

/** Creates a CA in `dir` and issues the three identities `names` describes. */
export async function createDemoOrg(dir: string, names: DemoNames): Promise<DemoOrg> {
  const ca = await createCa({ commonName: "ztna demo CA" });
  const { certPath: caPath } = await writeIdentityFiles(ca, dir, "ca");
  const issue = async (
    name: string,
    role: "relay" | "connector" | "agent",
    services: string[] = [],
    hostNames: string[] = [],
  ): Promise<IdentityPaths> => {
    const identity = await issueIdentity(ca, {
      commonName: name,
      ...grantNames(name, role, services, hostNames),
    });
    return await writeIdentityFiles(identity, dir, name);
  };
  return {
    caPath,
    relay: await issue(names.relay, "relay", [], [names.relayHost]),
    connector: await issue(names.connector, "connector", [names.service]),
    agent: await issue(names.agent, "agent"),
  };
}
