/**
 * Checks a daemon's identity files before they are used (a reload on SIGHUP):
 * the key matches the certificate, the certificate grants the daemon's role
 * (and, for a connector, the services it publishes), is within its validity and
 * is signed by a CA in the CA file. Every error names the file at fault. Also
 * says what changed between two checked identities, for the reload's log line.
 */
// @peculiar/x509 loads tsyringe, which needs the reflect-metadata API: it must be evaluated first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import type { Role } from "../control/messages.ts";
import { readIdentityFiles } from "../pki/mod.ts";
import { CERTIFICATE_LABEL, decodePem } from "../pki/pem.ts";
import { readText } from "../pki/files.ts";
import { type IdentitySummary, summarizeCertificate } from "./summary.ts";

/** A daemon's certificate, key and trusted CA (PEM files). */
export interface IdentityFiles {
  certificateFile: string;
  privateKeyFile: string;
  caFile: string;
}

/** What an identity check found wrong (see {@link IdentityCheckError}). */
export type IdentityProblem =
  | "role"
  | "services"
  | "not-yet-valid"
  | "expired"
  | "ca"
  | "not-signed";

/** An identity file that cannot serve; `message` names the file at fault. */
export class IdentityCheckError extends Error {
  constructor(readonly problem: IdentityProblem, message: string) {
    super(message);
    this.name = "IdentityCheckError";
  }
}

/** What the identity must grant. */
export interface IdentityExpectation {
  role: Role;
  /** Services the certificate must grant (a connector's published services). */
  services?: string[];
}

/** An identity that passed the checks. */
export interface CheckedIdentity {
  /** The certificate's summary (name, serial, validity, fingerprint). */
  summary: IdentitySummary;
  /** The CA file's text, to tell whether it changed. */
  caPem: string;
}

/** Every certificate in a PEM text, parsed. */
function certificatesIn(pem: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new x509.X509Certificate(decodePem(CERTIFICATE_LABEL, block)));
}

/** True when `anchor`'s key signed `certificate` (false for keys of another type, too). */
async function signedBy(
  certificate: x509.X509Certificate,
  anchor: x509.X509Certificate,
): Promise<boolean> {
  try {
    return await certificate.verify({ publicKey: anchor.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

/** Checks identity files against `expect`; returns the identity or throws naming the file. */
export async function checkIdentityFiles(
  files: IdentityFiles,
  expect: IdentityExpectation,
  now = new Date(),
): Promise<CheckedIdentity> {
  const identity = await readIdentityFiles(files.certificateFile, files.privateKeyFile);
  const summary = await summarizeCertificate(new Uint8Array(identity.certificate.rawData));
  const cert = files.certificateFile;
  if (summary.role !== expect.role) {
    throw new IdentityCheckError(
      "role",
      `${cert} grants ${summary.role ? `role ${summary.role}` : "no role"}, not ${expect.role}`,
    );
  }
  const missing = (expect.services ?? []).filter((s) => !summary.services.includes(s));
  if (missing.length > 0) {
    throw new IdentityCheckError(
      "services",
      `${cert} does not grant the published service ${missing.join(", ")}`,
    );
  }
  if (now < identity.certificate.notBefore) {
    throw new IdentityCheckError(
      "not-yet-valid",
      `${cert} is not valid before ${summary.notBefore}`,
    );
  }
  if (now > identity.certificate.notAfter) {
    throw new IdentityCheckError("expired", `${cert} expired on ${summary.notAfter}`);
  }
  let caPem: string;
  let anchors: x509.X509Certificate[];
  try {
    caPem = await readText(files.caFile, "CA certificate");
    anchors = certificatesIn(caPem);
  } catch (error) {
    throw new IdentityCheckError(
      "ca",
      `cannot load CA certificates from ${files.caFile}: ${(error as Error).message}`,
    );
  }
  if (anchors.length === 0) {
    throw new IdentityCheckError("ca", `${files.caFile} holds no PEM certificate`);
  }
  for (const anchor of anchors) {
    if (await signedBy(identity.certificate, anchor)) return { summary, caPem };
  }
  throw new IdentityCheckError(
    "not-signed",
    `${cert} (issuer "${summary.issuer}") is not signed by the CA in ${files.caFile}`,
  );
}

/**
 * What changed from `before` (null: not known) to `after`, as parts of a log
 * line: `certificate conn-1 (serial 1a2b, expires 2027-12-02)`, `CA`.
 */
export function identityChanges(before: CheckedIdentity | null, after: CheckedIdentity): string[] {
  const changes: string[] = [];
  const s = after.summary;
  if (before?.summary.sha256Fingerprint !== s.sha256Fingerprint) {
    changes.push(
      `certificate ${s.name} (serial ${s.serialNumber}, expires ${s.notAfter.slice(0, 10)})`,
    );
  }
  if (before?.caPem !== after.caPem) changes.push("CA");
  return changes;
}

/**
 * The identity as the files hold it now, unchecked (the state a reload is
 * compared with); null when they cannot be read.
 */
export async function readIdentitySnapshot(files: IdentityFiles): Promise<CheckedIdentity | null> {
  try {
    const pem = await readText(files.certificateFile, "certificate");
    const summary = await summarizeCertificate(decodePem(CERTIFICATE_LABEL, pem));
    return { summary, caPem: await readText(files.caFile, "CA certificate") };
  } catch {
    return null;
  }
}
