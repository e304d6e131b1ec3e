/**
 * Issuing a node identity into a directory: `<out>/<name>.crt`,
 * `<out>/<name>.key` (0600) and a copy of the CA certificate as `<out>/ca.crt`,
 * which is everything a node (or relay) needs.
 */
import { join } from "node:path";
import type { Role } from "../control/messages.ts";
import { grantNames, issueIdentity, writeIdentityFiles } from "../pki/mod.ts";
import { CA_CERT_FILE, caFiles, loadCa } from "./ca_dir.ts";
import { ensureDir, exists, readText } from "../pki/files.ts";
import {
  checkHostName,
  checkNodeName,
  checkServiceName,
  InvalidIdentityRequest,
  unique,
} from "./names.ts";

/** Roles an identity can grant. */
export const ROLES: readonly Role[] = ["relay", "connector", "agent"];

/** Default validity of an issued identity, in days. */
export const DEFAULT_IDENTITY_DAYS = 365;

/** What to issue, as given on the command line. */
export interface IssueRequest {
  /** Directory holding `ca.crt` and `ca.key`. */
  caDir: string;
  /** Node name: the certificate's CN and `<name>.node.ztna`. */
  name: string;
  /** Role granted (`ztna:role:<role>`). */
  role: string;
  /** Services a connector may publish (`<service>.svc.ztna`). */
  services: string[];
  /** Host names nodes dial a relay by. */
  hosts: string[];
  /** Validity in days from now. */
  days: number;
  /** Directory to write the identity to. */
  outDir: string;
}

/** A request that passed {@link checkIssueRequest}. */
export interface ValidIssueRequest extends IssueRequest {
  role: Role;
}

/** True for a role name. */
export function isRole(text: string): text is Role {
  return (ROLES as readonly string[]).includes(text);
}

/** `a relay`, `an agent`. */
function withArticle(role: Role): string {
  return `${/^[aeiou]/.test(role) ? "an" : "a"} ${role}`;
}

/**
 * Validates a request and normalises its names: the role exists, `services`
 * only for (and at least one for) connectors, `hosts` only for (and at least
 * one for) relays. Throws {@link InvalidIdentityRequest}.
 */
export function checkIssueRequest(request: IssueRequest): ValidIssueRequest {
  const { role } = request;
  if (!isRole(role)) {
    throw new InvalidIdentityRequest(`invalid role '${role}': expected ${ROLES.join(", ")}`);
  }
  checkNodeName(request.name);
  const services = unique(request.services.map(checkServiceName));
  const hosts = unique(request.hosts.map(checkHostName));
  if (role !== "connector" && services.length > 0) {
    throw new InvalidIdentityRequest(
      `--service is for connectors only (${withArticle(role)} publishes no service)`,
    );
  }
  if (role === "connector" && services.length === 0) {
    throw new InvalidIdentityRequest(
      "a connector needs at least one --service (the services it may publish)",
    );
  }
  if (role !== "relay" && hosts.length > 0) {
    throw new InvalidIdentityRequest(
      `--host is for relays only (nobody dials ${withArticle(role)} by host name)`,
    );
  }
  if (role === "relay" && hosts.length === 0) {
    throw new InvalidIdentityRequest(
      "a relay needs at least one --host: the DNS name nodes dial it by and verify it against",
    );
  }
  return { ...request, role, services, hosts };
}

/** What {@link issueToDirectory} wrote. */
export interface IssuedIdentity {
  certPath: string;
  keyPath: string;
  /** The copy of the CA certificate next to the identity. */
  caCertPath: string;
  notAfter: Date;
  /** Problems worth telling the operator that did not stop issuance. */
  warnings: string[];
}

/**
 * Issues the identity `request` describes from the CA in `request.caDir` and
 * writes it, with a copy of `ca.crt`, to `request.outDir` (created 0700).
 * Refuses to replace existing files; an existing `ca.crt` must be the same CA.
 */
export async function issueToDirectory(request: ValidIssueRequest): Promise<IssuedIdentity> {
  const ca = await loadCa(request.caDir);
  const caPem = await readText(caFiles(request.caDir).certPath, "CA certificate");
  const caCertPath = join(request.outDir, CA_CERT_FILE);
  const copyCa = !(await exists(caCertPath));
  if (!copyCa && (await readText(caCertPath, "CA certificate")).trim() !== caPem.trim()) {
    throw new Error(`${caCertPath} already exists and is another CA's certificate`);
  }
  const notAfter = new Date(Date.now() + request.days * 86_400_000);
  const warnings: string[] = [];
  if (notAfter > ca.certificate.notAfter) {
    warnings.push(
      `the identity is valid until ${notAfter.toISOString()} but its CA only until ` +
        `${ca.certificate.notAfter.toISOString()}; it stops verifying when the CA expires`,
    );
  }
  const identity = await issueIdentity(ca, {
    commonName: request.name,
    ...grantNames(request.name, request.role, request.services, request.hosts),
    notAfter,
  });
  await ensureDir(request.outDir);
  const { certPath, keyPath } = await writeIdentityFiles(identity, request.outDir, request.name);
  if (copyCa) {
    try {
      await Deno.writeTextFile(caCertPath, caPem, { mode: 0o644, createNew: true });
    } catch (error) {
      throw new Error(`cannot write ${caCertPath}: ${(error as Error).message}`);
    }
  }
  return { certPath, keyPath, caCertPath, notAfter, warnings };
}
