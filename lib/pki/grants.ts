/**
 * What a ztna certificate grants, read from its subjectAltName. The CA decides
 * these when it issues an identity, so the relay needs no policy of its own and
 * cannot grant anything itself:
 * - `URI:ztna:role:<relay|connector|agent>`: the node's role;
 * - `DNS:<service>.svc.ztna`: the connector may publish `<service>`; it is also
 *   the name an agent verifies the connector's session certificate against.
 * The node's name is the certificate's common name.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import type { Role } from "../control/messages.ts";

/** DNS suffix of service names in certificates. */
export const SERVICE_DNS_SUFFIX = ".svc.ztna";

/** The TLS server name of a service's connectors. */
export function serviceServerName(service: string): string {
  return `${service}${SERVICE_DNS_SUFFIX}`;
}

/** The grants of one certificate. */
export interface Grants {
  /** The node's name (certificate common name). */
  name: string;
  /** Its role, or null if the certificate grants none. */
  role: Role | null;
  /** Services it may publish. */
  services: string[];
}

/** DNS suffix of node names in certificates. */
export const NODE_DNS_SUFFIX = ".node.ztna";

/**
 * The subjectAltName entries ztna issues for node `name` of `role` publishing
 * `services` (a relay also gets the host names nodes will dial it by).
 */
export function grantNames(
  name: string,
  role: Role,
  services: string[] = [],
  hostNames: string[] = [],
): { dnsNames: string[]; uris: string[] } {
  return {
    dnsNames: [`${name}${NODE_DNS_SUFFIX}`, ...hostNames, ...services.map(serviceServerName)],
    uris: [`ztna:role:${role}`],
  };
}

/** Reads the grants of a DER certificate. */
export function readGrants(der: Uint8Array): Grants {
  const certificate = new x509.X509Certificate(new Uint8Array(der));
  const name = certificate.subjectName.getField("CN")[0] ?? "";
  const san = certificate.getExtension(x509.SubjectAlternativeNameExtension);
  let role: Role | null = null;
  const services: string[] = [];
  for (const entry of san?.names.items ?? []) {
    if (entry.type === "url") {
      const match = /^ztna:role:(relay|connector|agent)$/.exec(entry.value);
      if (match) role = match[1] as Role;
    } else if (entry.type === "dns" && entry.value.endsWith(SERVICE_DNS_SUFFIX)) {
      services.push(entry.value.slice(0, -SERVICE_DNS_SUFFIX.length));
    }
  }
  return { name, role, services };
}
