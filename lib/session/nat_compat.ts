/**
 * Whether two NATs' behaviours (RFC 4787, as `ztna probe nat-type` and the
 * nodes' own checks measure them) leave any direct path to find. A packet
 * from X reaches Y only if Y's filtering admits the address X's mapping gives
 * it towards Y. When X's mapping is endpoint-independent, that address is the
 * one the relay observes, which Y punches: Y's own punches open its filter for
 * it. When X's mapping depends on the destination, X's packets arrive from a
 * port nobody knew: only a filter that ignores the port (endpoint-independent
 * or address-dependent) lets them in, after which Y answers the source it saw
 * (peer-reflexive). Pure code.
 */
import type { NatBehavior } from "../stun/mod.ts";

/** One end's NAT behaviour, as its candidates announce it. */
export interface NatSummary {
  mapping: NatBehavior | "unknown";
  filtering: NatBehavior | "unknown";
}

/** The behaviours a NatSummary may name. */
export const NAT_SUMMARY_VALUES: readonly NatSummary["mapping"][] = [
  "endpoint-independent",
  "address-dependent",
  "address-and-port-dependent",
  "unknown",
];

const varies = (nat: NatSummary) =>
  nat.mapping === "address-dependent" || nat.mapping === "address-and-port-dependent";

/**
 * Why no direct path can exist between ends behind `ours` and `theirs`, or
 * null when one may (including whenever a needed part is unknown: then punch).
 */
export function directPathHopeless(
  ours: NatSummary | null,
  theirs: NatSummary | null,
): string | null {
  if (!ours || !theirs) return null;
  if (varies(ours) && varies(theirs)) {
    return "both NATs map each destination to its own port: neither end can know where to send";
  }
  for (
    const [moving, filtering, who] of [[ours, theirs, "ours"], [theirs, ours, "theirs"]] as const
  ) {
    if (varies(moving) && filtering.filtering === "address-and-port-dependent") {
      const other = who === "ours" ? "the peer's" : "our";
      return `${who === "ours" ? "our" : "the peer's"} NAT maps each destination to its own port ` +
        `and ${other} NAT admits only the exact addresses it sent to`;
    }
  }
  return null;
}
