/**
 * Start-up checks of a relay's identity files, so a wrong file fails with a
 * clear message instead of as a TLS alert on every node: the checks of
 * identity_check.ts for role `relay` (key matches the certificate, role,
 * validity, signed by a CA in the CA file), with advice for a relay operator.
 */
import {
  checkIdentityFiles,
  IdentityCheckError,
  type IdentityFiles,
  type IdentityProblem,
} from "./identity_check.ts";
import type { IdentitySummary } from "./summary.ts";

/** A relay's certificate, key and trusted CA (PEM files), as `Relay.start` takes them. */
export type RelayIdentityFiles = IdentityFiles;

/** What a relay operator should do about each problem, appended to the check's message. */
const ADVICE: Partial<Record<IdentityProblem, string>> = {
  role: ": issue the relay's identity with 'ztna identity issue --role relay --host NAME ...'",
  expired: "; issue a new relay identity",
  "not-signed": ": nodes trusting that CA would refuse the relay",
};

/** Checks a relay's identity files; returns the certificate's summary or throws naming the file. */
export async function checkRelayIdentity(
  files: RelayIdentityFiles,
  now = new Date(),
): Promise<IdentitySummary> {
  try {
    return (await checkIdentityFiles(files, { role: "relay" }, now)).summary;
  } catch (error) {
    if (!(error instanceof IdentityCheckError) || !ADVICE[error.problem]) throw error;
    throw new IdentityCheckError(error.problem, error.message + ADVICE[error.problem]);
  }
}
