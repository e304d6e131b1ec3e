/**
 * Which identity a relay runs with: the files given on its command line (the
 * production set-up: nothing is created and no CA key is involved), or the
 * one in its state directory, created on first run. Logs where it comes from.
 */
import { getLogger } from "@logtape/logtape";
import type { StateDir } from "../state_dir.ts";
import { formatFirstRunGuide } from "./first_run.ts";
import { caFiles } from "./ca_dir.ts";
import { checkRelayIdentity, type RelayIdentityFiles } from "./relay_check.ts";
import { defaultRelayHosts, prepareRelayState } from "./relay_state.ts";
import type { IdentitySummary } from "./summary.ts";

const log = getLogger(["ztna", "identity"]);

/** Where a relay's identity comes from. */
export type RelayIdentitySource =
  | { kind: "files"; files: RelayIdentityFiles }
  | { kind: "state"; stateDir: StateDir; hosts?: string[] };

/** A checked relay identity. */
export interface ResolvedRelayIdentity {
  files: RelayIdentityFiles;
  summary: IdentitySummary;
  /** The first-run guide to print, when this run created the identity. */
  firstRunGuide?: string;
}

/**
 * Resolves and checks the relay's identity (see {@link checkRelayIdentity}).
 * From a state directory it may create the CA and identity; `hosts` are the
 * names for a new identity (default: this machine's host name and localhost).
 */
export async function resolveRelayIdentity(
  source: RelayIdentitySource,
): Promise<ResolvedRelayIdentity> {
  if (source.kind === "files") {
    const summary = await checkRelayIdentity(source.files);
    log.info("using relay identity {cert} (key {key}, CA {ca})", {
      cert: source.files.certificateFile,
      key: source.files.privateKeyFile,
      ca: source.files.caFile,
    });
    return { files: source.files, summary };
  }
  const { path, source: why } = source.stateDir;
  log.info("state directory {path} (from {why})", { path, why });
  let hosts = source.hosts;
  if (!hosts || hosts.length === 0) {
    const defaults = defaultRelayHosts();
    if (defaults.skipped !== undefined) {
      log.warn("host name {name} is not a valid DNS name; not putting it in the certificate", {
        name: defaults.skipped,
      });
    }
    hosts = defaults.hosts;
  }
  const state = await prepareRelayState(path, hosts);
  const summary = await checkRelayIdentity(state.files);
  if (state.createdCa) {
    log.info("created CA {cert} and {key}", {
      cert: caFiles(state.caDir).certPath,
      key: caFiles(state.caDir).keyPath,
    });
  }
  if (state.createdIdentity) {
    log.info("created relay identity {cert} for {hosts}", {
      cert: state.files.certificateFile,
      hosts: summary.hosts.join(", "),
    });
    return { files: state.files, summary, firstRunGuide: formatFirstRunGuide(state, path, hosts) };
  }
  log.info("using relay identity {cert} from the state directory", {
    cert: state.files.certificateFile,
  });
  const missing = (source.hosts ?? []).filter((host) => !summary.hosts.includes(host));
  if (missing.length > 0) {
    log.warn(
      "the existing relay certificate does not name {missing} (it names {hosts}); nodes dialling " +
        "those names will refuse it: move {dir} away to have a new identity issued",
      { missing: missing.join(", "), hosts: summary.hosts.join(", "), dir: state.relayDir },
    );
  }
  if (state.caKeyPresent) {
    log.warn(
      "the CA private key {key} is on this relay host; for production keep it offline " +
        "(the relay needs only {dir})",
      { key: caFiles(state.caDir).keyPath, dir: state.relayDir },
    );
  }
  return { files: state.files, summary };
}
