/** Test identities for relay tests: a CA, a relay, connectors and agents with ztna grants. */
import { createCa, grantNames, issueIdentity, writeIdentityFiles } from "../../lib/pki/mod.ts";
import type { IdentityFiles } from "./certificates.ts";

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
