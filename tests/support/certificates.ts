/** Test PKI made at test time: a CA, a server and a client identity, written to a temp folder. */
import { createCa, type Identity, issueIdentity, writeIdentityFiles } from "../../lib/pki/mod.ts";

/** Paths of one identity's files. */
export interface IdentityFiles {
  certPath: string;
  keyPath: string;
}

/** A CA and identities issued by it, as files. */
export interface TestPki {
  dir: string;
  caPath: string;
  ca: Identity;
  server: IdentityFiles;
  client: IdentityFiles;
  /** Removes the folder. */
  cleanup(): Promise<void>;
}

/** The DNS name in the test server's certificate. */
export const SERVER_NAME = "server.test";

/** Creates a CA with a server (`server.test`) and a client (`client.test`) identity. */
export async function makeTestPki(name = "test"): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: `ztna-${name}-` });
  const ca = await createCa({ commonName: `ztna ${name} CA` });
  const { certPath: caPath } = await writeIdentityFiles(ca, dir, "ca");
  const server = await writeIdentityFiles(
    await issueIdentity(ca, { commonName: SERVER_NAME, dnsNames: [SERVER_NAME] }),
    dir,
    "server",
  );
  const client = await writeIdentityFiles(
    await issueIdentity(ca, { commonName: "client.test", dnsNames: ["client.test"] }),
    dir,
    "client",
  );
  return {
    dir,
    caPath,
    ca,
    server,
    client,
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}
