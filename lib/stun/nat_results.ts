/**
 * The records RFC 5780 NAT-behaviour classification reads and writes: which test got which
 * answer, and what they show in RFC 4787's terms. Also the little helpers findings and
 * evidence lines share.
 */
import type { SocketAddress } from "../net/address.ts";

/** RFC 4787's three behaviours, for mapping and filtering alike. */
export type NatBehavior =
  | "endpoint-independent"
  | "address-dependent"
  | "address-and-port-dependent";

/** The three behaviours, from most to least permissive. */
export const NAT_BEHAVIORS: readonly NatBehavior[] = [
  "endpoint-independent",
  "address-dependent",
  "address-and-port-dependent",
];

/** What one part (mapping or filtering) came to: a behaviour, or the ones left and why. */
export type BehaviorFinding =
  | { behavior: NatBehavior }
  | { behavior: "undetermined"; possible: NatBehavior[]; reason: string };

/** The answer to a mapping test's Binding request (no CHANGE-REQUEST). */
export type MappingAnswer =
  /** A success response; `mapped` is its XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS). */
  | { outcome: "mapped"; mapped: SocketAddress }
  /** Nothing came back, retransmissions included. */
  | { outcome: "no-answer" }
  /** An error response. */
  | { outcome: "error"; code: number; reason?: string };

/** The answer to a filtering test's Binding request (with CHANGE-REQUEST). */
export type FilteringAnswer =
  /** A success response, arriving from `from` (the datagram's source address). */
  | { outcome: "answered"; from: SocketAddress }
  /** Nothing came back, retransmissions included. */
  | { outcome: "no-answer" }
  /** An error response, e.g. 420 from a server that cannot change its address. */
  | { outcome: "error"; code: number; reason?: string };

/** Which test got which answer. Tests not run are left out. */
export interface NatObservations {
  /**
   * The addresses the mapping socket sends from: its bound address, or for a wildcard-bound
   * socket each local interface address with its port. Test I's mapped address being one of
   * them means no NAT. An empty list cannot show that, so it counts as being behind a NAT.
   */
  localAddresses: readonly SocketAddress[];
  /** The server's primary address, where test I went. */
  primary: SocketAddress;
  /** The OTHER-ADDRESS in test I's answer; absent when the server has no alternate address. */
  otherAddress?: SocketAddress;
  /** Mapping test I: a Binding request to the primary address. */
  testI: MappingAnswer;
  /** Mapping test II: to the alternate IP and the primary port, from the same socket. */
  testII?: MappingAnswer;
  /** Mapping test III: to the alternate IP and the alternate port, from the same socket. */
  testIII?: MappingAnswer;
  /**
   * A Binding request from the same socket to another STUN server at another IP: a stand-in
   * for test II when the server has no alternate address (as Tailscale's netcheck compares
   * what its servers saw).
   */
  otherServer?: { server: SocketAddress; answer: MappingAnswer };
  /** Filtering test II: CHANGE-REQUEST change IP and port, to the primary, from a fresh socket. */
  filteringII?: FilteringAnswer;
  /** Filtering test III: CHANGE-REQUEST change port only, to the primary, from that socket. */
  filteringIII?: FilteringAnswer;
  /** Whether a datagram sent to our own mapped address came back (RFC 5780 §4.5), if tried. */
  hairpinning?: boolean;
}

/** The RFC 3489 names, still the ones people ask for. */
export type ClassicNatType =
  | "open"
  | "full cone"
  | "restricted cone"
  | "port-restricted cone"
  | "symmetric"
  | "unknown";

/** What the answers show. */
export interface NatClassification {
  /** Whether test I's mapped address is not local; undefined when test I got no address. */
  behindNat: boolean | undefined;
  /** Test I's mapped address: the address peers see. */
  mapped?: SocketAddress;
  /** Mapping behaviour (endpoint-independent when there is no NAT). */
  mapping: BehaviorFinding;
  /** Filtering behaviour (of a firewall, when there is no NAT). */
  filtering: BehaviorFinding;
  /**
   * "open" without a NAT (whatever a firewall filters: see `filtering`); "symmetric" for any
   * mapping that is not endpoint-independent; a cone by filtering for an endpoint-independent
   * one; "unknown" when the parts it needs are undetermined.
   */
  classic: ClassicNatType;
  /** The hairpinning result, if one was given. */
  hairpinning?: boolean;
  /** One line per answer and per conclusion, e.g. "test I: 198.18.1.2:3478 saw us at ...". */
  evidence: string[];
}

/** An undetermined finding. */
export function undetermined(possible: NatBehavior[], reason: string): BehaviorFinding {
  return { behavior: "undetermined", possible, reason };
}

/** "error 420 (Unknown Attribute)": an error response, for an evidence line. */
export function describeError(answer: { code: number; reason?: string }): string {
  return `error ${answer.code}${answer.reason ? ` (${answer.reason})` : ""}`;
}
