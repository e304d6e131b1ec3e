/**
 * A relay's identity in its state directory, created on first run so that
 * `ztna relay --listen ADDR` works with no PKI prepared:
 *
 *     <state>/ca/ca.crt, ca.key                      the organisation CA (move ca.key offline!)
 *     <state>/relay/relay.crt, relay.key, ca.crt     the relay's identity and trust anchor
 *
 * `<state>/relay` is exactly what `ztna identity issue --name relay --role relay
 * --out <state>/relay` writes, and the relay needs nothing else: once it
 * exists, later runs use it and never read `<state>/ca`.
 */
import { join } from "node:path";
import { CA_CERT_FILE, caFiles, DEFAULT_CA_NAME, initCa } from "./ca_dir.ts";
import { ensureDir, exists } from "../pki/files.ts";
import { DEFAULT_IDENTITY_DAYS, issueToDirectory } from "./issue.ts";
import { checkHostName, unique } from "./names.ts";
import type { RelayIdentityFiles } from "./relay_check.ts";
import { issueCommandLine } from "./shell.ts";

/** Node name of the relay identity a state directory holds. */
export const RELAY_NODE_NAME = "relay";

/** The directories inside a state directory. */
export function relayStateLayout(stateDir: string): { caDir: string; relayDir: string } {
  return { caDir: join(stateDir, "ca"), relayDir: join(stateDir, "relay") };
}

/** The relay identity files of a state directory. */
export function relayStateFiles(stateDir: string): RelayIdentityFiles {
  const { relayDir } = relayStateLayout(stateDir);
  return {
    certificateFile: join(relayDir, `${RELAY_NODE_NAME}.crt`),
    privateKeyFile: join(relayDir, `${RELAY_NODE_NAME}.key`),
    caFile: join(relayDir, CA_CERT_FILE),
  };
}

/**
 * Host names for a new relay identity when none are given: this machine's
 * host name (if it is a valid DNS name) and `localhost`.
 */
export function defaultRelayHosts(hostname: () => string = Deno.hostname): {
  hosts: string[];
  skipped?: string;
} {
  let own: string | undefined;
  try {
    own = hostname();
    return { hosts: unique([checkHostName(own), "localhost"]) };
  } catch {
    return { hosts: ["localhost"], skipped: own };
  }
}

/** The outcome of {@link prepareRelayState}. */
export interface RelayState {
  files: RelayIdentityFiles;
  caDir: string;
  relayDir: string;
  /** This run created the CA. */
  createdCa: boolean;
  /** This run issued the relay identity. */
  createdIdentity: boolean;
  /** The CA private key is in the state directory (fine to start with, not for production). */
  caKeyPresent: boolean;
}

/**
 * Loads or creates the relay identity in `stateDir`: reuses a complete
 * `<state>/relay`; otherwise issues one for `hosts` from `<state>/ca`, creating
 * that CA first if the directory has none. Throws when the state is
 * incomplete in a way it must not guess about (a partial identity, a CA
 * certificate without its key).
 */
export async function prepareRelayState(stateDir: string, hosts: string[]): Promise<RelayState> {
  const { caDir, relayDir } = relayStateLayout(stateDir);
  const files = relayStateFiles(stateDir);
  const ca = caFiles(caDir);
  const paths = [files.certificateFile, files.privateKeyFile, files.caFile];
  const present = await Promise.all(paths.map(exists));
  const result = { files, caDir, relayDir, createdCa: false, createdIdentity: false };
  if (present.every(Boolean)) {
    return { ...result, caKeyPresent: await exists(ca.keyPath) };
  }
  if (present.some(Boolean)) {
    const missing = paths.filter((_, i) => !present[i]).join(", ");
    throw new Error(
      `incomplete relay identity in ${relayDir} (missing ${missing}): restore the files, ` +
        "or move the directory away to have a new identity issued",
    );
  }
  await ensureDir(stateDir);
  const [haveCert, haveKey] = await Promise.all([exists(ca.certPath), exists(ca.keyPath)]);
  if (haveCert && !haveKey) {
    const command = issueCommandLine({
      caDir,
      name: RELAY_NODE_NAME,
      role: "relay",
      hosts,
      outDir: relayDir,
    });
    throw new Error(
      `no relay identity in ${relayDir} and no CA private key in ${caDir} to issue one: ` +
        `run '${command}' where ca.key is kept, or start with --cert, --key and --ca`,
    );
  }
  if (!haveCert) {
    await initCa(caDir, DEFAULT_CA_NAME);
    result.createdCa = true;
  }
  await issueToDirectory({
    caDir,
    name: RELAY_NODE_NAME,
    role: "relay",
    services: [],
    hosts,
    days: DEFAULT_IDENTITY_DAYS,
    outDir: relayDir,
  });
  return { ...result, createdIdentity: true, caKeyPresent: true };
}

/** The commands an operator runs next to issue a connector's and an agent's identity. */
export function nextStepCommands(caDir: string): string[] {
  return [
    issueCommandLine({
      caDir,
      name: "connector-1",
      role: "connector",
      services: ["web"],
      outDir: "connector-1",
    }),
    issueCommandLine({ caDir, name: "agent-1", role: "agent", outDir: "agent-1" }),
  ];
}
