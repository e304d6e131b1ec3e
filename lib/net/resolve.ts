/**
 * Host names for addresses an operator types (`--relay relay.example.com:4433`):
 * parsing `HOST:PORT` where HOST is a DNS name or an IP literal, resolving a
 * name to its addresses (A and AAAA, in the order to try them, /etc/hosts
 * honoured), and keeping those a socket of a given family can reach.
 */
import { lookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";
import { type Family, familyOf, parseHostPort, type SocketAddress } from "./address.ts";

/**
 * A host and port as given: `hostname` is a DNS name or an IP literal.
 * Every SocketAddress is one (its host is an IP literal).
 */
export interface HostPort {
  hostname: string;
  port: number;
}

/** Resolves a DNS name to IP address literals, in the order to try them; rejects if it has none. */
export type Resolver = (name: string) => Promise<string[]>;

/** A name that did not resolve to any address. */
export class HostNotFoundError extends Error {
  /** The name that did not resolve. */
  readonly hostname: string;
  constructor(hostname: string, detail: string) {
    super(`cannot resolve host name "${hostname}": ${detail}`);
    this.name = "HostNotFoundError";
    this.hostname = hostname;
  }
}

/** A name resolved, but to no address the local socket can reach (e.g. only IPv6 for an IPv4 socket). */
export class NoUsableAddressError extends Error {
  /** The name that was resolved. */
  readonly hostname: string;
  constructor(hostname: string, message: string) {
    super(message);
    this.name = "NoUsableAddressError";
    this.hostname = hostname;
  }
}

/** Most addresses kept from one resolution (a name with hundreds of records is tried only this far). */
export const MAX_RESOLVED_ADDRESSES = 16;

/** One DNS label (RFC 1123): letters, digits, inner hyphens, 1 to 63 characters. */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** True when `host` is an IPv4 (dotted quad) or IPv6 literal. */
export function isIpLiteral(host: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(host) || ipaddr.IPv6.isValid(host);
}

/** True when `host` is a DNS name (RFC 1123 labels, at most 253 characters, one trailing dot allowed). */
export function isHostName(host: string): boolean {
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split(".");
  // All-numeric "names" (127.1, 010.0.0.1) are C-style IPv4 forms that mislead: not names.
  if (labels.every((label) => /^\d+$/.test(label))) return false;
  return labels.every((label) => LABEL.test(label));
}

/**
 * Parses `relay.example.com:4433`, `1.2.3.4:4433` or `[2001:db8::1]:4433`. IP
 * literals come back normalised (as parseHostPort gives them); names as given
 * (`localhost` stays a name, resolved like any other).
 */
export function parseHostNamePort(text: string): HostPort {
  const match = /^([^:\[\]]+):(\d+)$/.exec(text);
  if (match && !isIpLiteral(match[1]) && !/^[\d.]+$/.test(match[1])) {
    const port = Number(match[2]);
    if (port > 65535) throw new Error(`invalid port in "${text}": must be 0-65535`);
    if (!isHostName(match[1])) {
      throw new Error(`invalid host name "${match[1]}" in "${text}"`);
    }
    return { hostname: match[1], port };
  }
  return parseHostPort(text);
}

/** Formats a host and port as `relay.example.com:4433`, `1.2.3.4:4433` or `[::1]:4433`. */
export function formatHostPort(target: HostPort): string {
  return target.hostname.includes(":")
    ? `[${target.hostname}]:${target.port}`
    : `${target.hostname}:${target.port}`;
}

/**
 * The system's resolver: getaddrinfo (node:dns `lookup`), so /etc/hosts and
 * nsswitch apply, A and AAAA records both, in getaddrinfo's order (RFC 6724).
 */
export const systemResolver: Resolver = async (name) => {
  try {
    const answers = await lookup(name, { all: true, verbatim: true });
    return answers.map((answer) => answer.address);
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new HostNotFoundError(
      name,
      code === "ENOTFOUND" ? "no such host (ENOTFOUND)" : (error as Error).message,
    );
  }
};

/**
 * The addresses of `target`, in the order to try them: an IP literal as is;
 * a name through `resolver` (duplicates dropped, at most
 * MAX_RESOLVED_ADDRESSES). Rejects with HostNotFoundError when a name has
 * no address.
 */
export async function resolveHostPort(
  target: HostPort,
  resolver: Resolver = systemResolver,
): Promise<SocketAddress[]> {
  if (isIpLiteral(target.hostname)) return [parseHostPort(formatHostPort(target))];
  let answers: string[];
  try {
    answers = await resolver(target.hostname);
  } catch (error) {
    if (error instanceof HostNotFoundError) throw error;
    throw new HostNotFoundError(target.hostname, (error as Error).message);
  }
  const seen = new Set<string>();
  const addresses: SocketAddress[] = [];
  for (const answer of answers) {
    if (!isIpLiteral(answer)) continue;
    const address = parseHostPort(formatHostPort({ hostname: answer, port: target.port }));
    if (seen.has(address.hostname)) continue;
    seen.add(address.hostname);
    addresses.push(address);
    if (addresses.length === MAX_RESOLVED_ADDRESSES) break;
  }
  if (addresses.length === 0) throw new HostNotFoundError(target.hostname, "no address");
  return addresses;
}

/**
 * Whether a socket bound to `local` (of `family`) can send to `peer`: an IPv4
 * socket reaches IPv4 only; an IPv6 socket bound to `::` reaches both (IPv4
 * as v4-mapped); one bound to a specific IPv6 address reaches IPv6 only.
 */
export function canReach(local: SocketAddress, family: Family, peer: SocketAddress): boolean {
  const peerFamily = familyOf(peer);
  if (family === 4) return peerFamily === 4;
  return peerFamily === 6 || local.hostname === "::";
}

/**
 * The addresses of `target` a socket bound to `local` can reach, in order;
 * rejects with HostNotFoundError, or NoUsableAddressError saying which
 * addresses were skipped and why.
 */
export async function reachableAddresses(
  target: HostPort,
  local: SocketAddress,
  family: Family,
  resolver: Resolver = systemResolver,
): Promise<SocketAddress[]> {
  const addresses = await resolveHostPort(target, resolver);
  const usable = addresses.filter((address) => canReach(local, family, address));
  if (usable.length > 0) return usable;
  const found = addresses.map((address) => address.hostname).join(", ");
  const socket = family === 4 ? "an IPv4 socket" : `an IPv6 socket bound to ${local.hostname}`;
  throw new NoUsableAddressError(
    target.hostname,
    `${formatHostPort(target)}: none of its addresses (${found}) can be reached from ${socket}`,
  );
}
