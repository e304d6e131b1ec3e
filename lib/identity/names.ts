/**
 * Validation of what goes into a ztna identity: node and service names (DNS
 * labels) and the host names a relay is dialled by (DNS names).
 */
import ipaddr from "ipaddr.js";
import { isServiceName } from "../control/messages.ts";

/** An identity request that can never be valid (bad name, grant for the wrong role, ...). */
export class InvalidIdentityRequest extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidIdentityRequest";
  }
}

/** Node names that would collide with the trust anchor's files (`ca.crt`, `ca.key`). */
const RESERVED_NAMES: readonly string[] = ["ca"];

const LABEL_RULE = "a DNS label: 1-63 lowercase letters, digits and inner hyphens";

/** True for a DNS label as ztna uses them: lowercase letters, digits, inner hyphens, 1-63 chars. */
export function isDnsLabel(text: string): boolean {
  return isServiceName(text);
}

/** Checks a node name (the certificate's CN and `<name>.node.ztna`). */
export function checkNodeName(name: string): string {
  if (!isDnsLabel(name)) {
    throw new InvalidIdentityRequest(`invalid name '${name}': expected ${LABEL_RULE}`);
  }
  if (RESERVED_NAMES.includes(name)) {
    throw new InvalidIdentityRequest(
      `invalid name '${name}': reserved (ca.crt is the trust anchor's file)`,
    );
  }
  return name;
}

/** Checks a service name (granted as `<service>.svc.ztna`). */
export function checkServiceName(service: string): string {
  if (!isDnsLabel(service)) {
    throw new InvalidIdentityRequest(`invalid service '${service}': expected ${LABEL_RULE}`);
  }
  return service;
}

/**
 * Checks a host name nodes will dial a relay by and returns it lowercased.
 * IP addresses are refused: nodes verify the relay by DNS name (TLS SNI).
 */
export function checkHostName(host: string): string {
  const lower = host.toLowerCase().replace(/\.$/, "");
  if (ipaddr.isValid(lower) || ipaddr.isValid(lower.replace(/^\[(.*)\]$/, "$1"))) {
    throw new InvalidIdentityRequest(
      `invalid host '${host}': an IP address; give the DNS name nodes dial the relay by`,
    );
  }
  const labels = lower.split(".");
  if (lower.length > 253 || labels.some((label) => !isDnsLabel(label))) {
    throw new InvalidIdentityRequest(
      `invalid host '${host}': expected a DNS name of labels (letters, digits, inner hyphens)`,
    );
  }
  if (lower.endsWith(".ztna")) {
    throw new InvalidIdentityRequest(
      `invalid host '${host}': names under .ztna are reserved for grants`,
    );
  }
  return lower;
}

/** Drops repeated entries, keeping the first of each. */
export function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}
