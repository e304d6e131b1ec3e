/** What `ztna identity init-ca` and `ztna identity issue` print. */
import type { CaFiles } from "./ca_dir.ts";
import type { IssuedIdentity, ValidIssueRequest } from "./issue.ts";
import { issueCommandLine } from "./shell.ts";

/** The report of a created CA, with the reminder to keep its key offline and the next command. */
export function formatCaCreated(
  dir: string,
  commonName: string,
  files: CaFiles,
  notAfter: Date,
): string {
  const next = issueCommandLine({
    caDir: dir,
    name: "relay",
    role: "relay",
    hosts: ["relay.example.com"],
    outDir: "relay",
  });
  return [
    `Created the CA "${commonName}", valid until ${notAfter.toISOString()}:`,
    `  certificate  ${files.certPath}  (public: every relay and node gets a copy)`,
    `  private key  ${files.keyPath}  (mode 0600)`,
    "Keep ca.key offline and never on the relay: whoever holds it can issue any identity.",
    "Next, issue the relay's identity (use the DNS name nodes dial it by):",
    `  ${next}`,
  ].join("\n");
}

/** The report of an issued identity. */
export function formatIssued(request: ValidIssueRequest, issued: IssuedIdentity): string {
  const grants = request.role === "connector"
    ? ` (services: ${request.services.join(", ")})`
    : request.role === "relay"
    ? ` (hosts: ${request.hosts.join(", ")})`
    : "";
  return [
    `Issued ${request.role} "${request.name}"${grants}, valid until ${issued.notAfter.toISOString()}:`,
    `  certificate  ${issued.certPath}`,
    `  private key  ${issued.keyPath}  (mode 0600)`,
    `  CA           ${issued.caCertPath}`,
    `Copy the directory ${request.outDir} to the ${request.role}'s machine: it holds all it needs.`,
  ].join("\n");
}
