/**
 * What a ztna certificate is and grants, for `ztna identity show` and the
 * relay's start-up checks: name, role, services, host names, validity, issuer.
 */
// @peculiar/x509 loads tsyringe, which needs the reflect-metadata API: it must be evaluated first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import type { Role } from "../control/messages.ts";
import { CERTIFICATE_LABEL, decodePem } from "../pki/pem.ts";
import { describeCertificate } from "../pki/describe.ts";
import { NODE_DNS_SUFFIX, readGrants, SERVICE_DNS_SUFFIX } from "../pki/grants.ts";
import { readText } from "../pki/files.ts";

/** A certificate as an operator reads it. */
export interface IdentitySummary {
  /** The node name (common name). */
  name: string;
  /** The granted role, or null (a CA certificate, or not a ztna identity). */
  role: Role | null;
  /** Services the holder may publish. */
  services: string[];
  /** Other DNS names: those a relay is dialled by. */
  hosts: string[];
  /** True for a CA certificate (basicConstraints CA:TRUE). */
  isCa: boolean;
  subject: string;
  issuer: string;
  /** ISO 8601. */
  notBefore: string;
  /** ISO 8601. */
  notAfter: string;
  serialNumber: string;
  /** SHA-256 of the DER, colon-separated uppercase hex. */
  sha256Fingerprint: string;
}

/** Summarises a DER certificate. */
export async function summarizeCertificate(der: Uint8Array): Promise<IdentitySummary> {
  const described = await describeCertificate(der);
  const grants = readGrants(der);
  const certificate = new x509.X509Certificate(new Uint8Array(der));
  const hosts = described.subjectAltNames
    .filter((san) => san.startsWith("DNS:"))
    .map((san) => san.slice(4))
    .filter((dns) => !dns.endsWith(NODE_DNS_SUFFIX) && !dns.endsWith(SERVICE_DNS_SUFFIX));
  return {
    name: grants.name,
    role: grants.role,
    services: grants.services,
    hosts,
    isCa: certificate.getExtension(x509.BasicConstraintsExtension)?.ca === true,
    subject: described.subject,
    issuer: described.issuer,
    notBefore: described.notBefore,
    notAfter: described.notAfter,
    serialNumber: described.serialNumber,
    sha256Fingerprint: described.sha256Fingerprint,
  };
}

/** Reads the first certificate of a PEM file and summarises it; errors name the file. */
export async function summarizeCertificateFile(path: string): Promise<IdentitySummary> {
  const pem = await readText(path, "certificate");
  try {
    return await summarizeCertificate(decodePem(CERTIFICATE_LABEL, pem));
  } catch (error) {
    throw new Error(`cannot read a certificate from ${path}: ${(error as Error).message}`);
  }
}

/** `valid`, `expired N days ago`, `not valid before ...` or `expires in N days`, at `now`. */
export function validityStatus(summary: IdentitySummary, now = new Date()): string {
  const day = 86_400_000;
  const start = Date.parse(summary.notBefore);
  const end = Date.parse(summary.notAfter);
  if (now.getTime() < start) return `NOT YET VALID (starts ${summary.notBefore})`;
  if (now.getTime() > end) return `EXPIRED ${Math.floor((now.getTime() - end) / day)} days ago`;
  return `expires in ${Math.floor((end - now.getTime()) / day)} days`;
}

/** Human-readable lines for `ztna identity show`. */
export function formatIdentitySummary(summary: IdentitySummary, now = new Date()): string {
  const role = summary.role ??
    (summary.isCa ? "none (CA certificate: signs identities)" : "none (no ztna:role grant)");
  const rows: [string, string][] = [
    ["name", summary.name || "(no common name)"],
    ["role", role],
  ];
  if (summary.services.length > 0 || summary.role === "connector") {
    rows.push(["services", summary.services.join(", ") || "(none)"]);
  }
  if (summary.hosts.length > 0 || summary.role === "relay") {
    rows.push(["hosts", summary.hosts.join(", ") || "(none)"]);
  }
  rows.push(
    ["valid", `${summary.notBefore} to ${summary.notAfter} (${validityStatus(summary, now)})`],
    ["subject", summary.subject],
    ["issuer", summary.issuer],
    ["serial", summary.serialNumber],
    ["sha256", summary.sha256Fingerprint],
  );
  return rows.map(([label, value]) => `${label.padEnd(9)} ${value}`).join("\n");
}
