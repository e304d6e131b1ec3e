/**
 * Candidates: the addresses at which one end of a session may be reachable
 * directly, from its one UDP socket. Gathered from the address the relay
 * observes (QAD), the host's interfaces (peers on one LAN), and a guess of
 * public IP with the local port for NATs whose mapping is not
 * endpoint-independent. Pure functions: the caller supplies the facts.
 */
import ipaddr from "ipaddr.js";
import { formatAddress, parseHostPort, type SocketAddress } from "../net/address.ts";

/** Where a candidate comes from, most direct first. */
export type CandidateKind = "lan" | "public" | "guess" | "reflexive";

/** One candidate address (`1.2.3.4:5678` or `[2001:db8::1]:5678`). */
export interface Candidate {
  address: string;
  kind: CandidateKind;
}

/** Most candidates one end announces or accepts. */
export const MAX_CANDIDATES = 16;

/** An interface address, as `Deno.networkInterfaces()` lists it. */
export interface InterfaceAddress {
  name: string;
  family: "IPv4" | "IPv6";
  address: string;
}

/** Facts the local candidates are gathered from. */
export interface LocalFacts {
  /** The socket's local port. */
  port: number;
  /** 4: an IPv4 socket; 6: a dual-stack socket (IPv4 and IPv6 candidates). */
  family: 4 | 6;
  /** The address the relay observes for this node (QAD), if known. */
  observed?: string;
  /** The host's interface addresses. */
  interfaces: InterfaceAddress[];
  /** Interfaces whose addresses are never candidates (the agent's TUN device). */
  excludeInterfaces?: string[];
  /**
   * True when the NAT's mapping is known to depend on the destination; then the
   * public IP with the local port is added as a guess. Unknown (undefined): the
   * guess is added when the observed port differs from the local one.
   */
  mappingVariesByDestination?: boolean;
}

type Range = ReturnType<ipaddr.IPv4["range"]> | ReturnType<ipaddr.IPv6["range"]>;
/**
 * Ranges no candidate is taken from or sent to. Documentation and benchmarking
 * ranges (ipaddr's "reserved") stay allowed: test labs use them.
 */
const NEVER: readonly Range[] = ["unspecified", "broadcast", "multicast", "linkLocal"];

/** The range of an address (v4-mapped IPv6 as IPv4), or null if it is not an IP address. */
function rangeOf(hostname: string): { range: Range; v4: boolean } | null {
  if (!ipaddr.isValid(hostname)) return null;
  let ip = ipaddr.parse(hostname);
  if (ip.kind() === "ipv6" && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
    ip = (ip as ipaddr.IPv6).toIPv4Address();
  }
  const v4 = ip.kind() === "ipv4";
  // 0.0.0.0/8 holds ztna's virtual relay addresses.
  if (v4 && (ip as ipaddr.IPv4).octets[0] === 0) return { range: "unspecified", v4 };
  return { range: ip.range(), v4 };
}

/** This end's candidates, deduplicated, at most MAX_CANDIDATES, most direct first. */
export function localCandidates(facts: LocalFacts): Candidate[] {
  const out: Candidate[] = [];
  const add = (address: SocketAddress, kind: CandidateKind) => {
    const text = formatAddress(address);
    if (out.length < MAX_CANDIDATES && !out.some((c) => c.address === text)) {
      out.push({ address: text, kind });
    }
  };
  const excluded = new Set(facts.excludeInterfaces ?? []);
  for (const entry of facts.interfaces) {
    if (excluded.has(entry.name)) continue;
    if (entry.family === "IPv6" && facts.family === 4) continue;
    const info = rangeOf(entry.address);
    if (!info || NEVER.includes(info.range) || info.range === "loopback") continue;
    add({ hostname: entry.address, port: facts.port }, "lan");
  }
  if (facts.observed) {
    const observed = parseHostPort(facts.observed);
    add(observed, "public");
    const varies = facts.mappingVariesByDestination ?? observed.port !== facts.port;
    if (varies) add({ hostname: observed.hostname, port: facts.port }, "guess");
  }
  // Loopback only where the relay itself is reached over loopback (one host, tests).
  return observedOnLoopback(facts.observed)
    ? out
    : out.filter((c) => rangeOf(parseHostPort(c.address).hostname)?.range !== "loopback");
}

/** True when the relay observes this end at a loopback address (everything on one host). */
function observedOnLoopback(observed: string | undefined): boolean {
  return observed !== undefined && observed !== "" &&
    rangeOf(parseHostPort(observed).hostname)?.range === "loopback";
}

/**
 * The peer's candidates this end will punch and probe: well-formed, not
 * virtual, multicast, broadcast or link-local, port not 0, reachable from our
 * socket's family, loopback only where this end reaches its relay over
 * loopback, deduplicated and capped.
 */
export function acceptPeerCandidates(
  candidates: readonly Candidate[],
  facts: Pick<LocalFacts, "family" | "observed">,
): Candidate[] {
  const allowLoopback = observedOnLoopback(facts.observed);
  const out: Candidate[] = [];
  for (const candidate of candidates) {
    if (out.length >= MAX_CANDIDATES) break;
    let address: SocketAddress;
    try {
      address = parseHostPort(candidate.address);
    } catch {
      continue;
    }
    const info = rangeOf(address.hostname);
    if (!info || address.port === 0 || NEVER.includes(info.range)) continue;
    if (!info.v4 && facts.family === 4) continue;
    if (info.range === "loopback" && !allowLoopback) continue;
    const text = formatAddress(address);
    if (!out.some((c) => c.address === text)) out.push({ address: text, kind: candidate.kind });
  }
  return out;
}
