/**
 * The pure half of RFC 5780 NAT-behaviour discovery: given what each test's Binding request
 * got back, the NAT's mapping (§4.3) and filtering (§4.4) behaviour in RFC 4787's terms, the
 * classic RFC 3489 name, and the evidence read off the answers. A part the answers cannot
 * settle is "undetermined", with the behaviours still possible and why. Sending the requests
 * is someone else's job; `planNatTests` (nat_plan.ts) says which to send.
 */
import { formatAddress as fmt } from "../net/address.ts";
import { classifyFiltering } from "./nat_filtering.ts";
import { classifyMapping, describeMapping } from "./nat_mapping.ts";
import {
  type BehaviorFinding,
  type ClassicNatType,
  NAT_BEHAVIORS,
  type NatClassification,
  type NatObservations,
  undetermined,
} from "./nat_results.ts";
import { sameSocketAddress } from "./socket_address.ts";

export {
  type BehaviorFinding,
  type ClassicNatType,
  type FilteringAnswer,
  type MappingAnswer,
  NAT_BEHAVIORS,
  type NatBehavior,
  type NatClassification,
  type NatObservations,
} from "./nat_results.ts";

/** The RFC 3489 name for a mapping and filtering behaviour (any non-EIM mapping is symmetric). */
function classicName(
  behindNat: boolean | undefined,
  mapping: BehaviorFinding,
  filtering: BehaviorFinding,
): ClassicNatType {
  if (behindNat === undefined) return "unknown";
  if (!behindNat) return "open";
  if (
    mapping.behavior === "undetermined"
      ? !mapping.possible.includes("endpoint-independent")
      : mapping.behavior !== "endpoint-independent"
  ) {
    return "symmetric";
  }
  if (mapping.behavior === "undetermined") return "unknown";
  switch (filtering.behavior) {
    case "endpoint-independent":
      return "full cone";
    case "address-dependent":
      return "restricted cone";
    case "address-and-port-dependent":
      return "port-restricted cone";
    case "undetermined":
      return "unknown";
  }
}

/**
 * Classifies the answers to the RFC 5780 tests. Mapping: test I's address local means no NAT
 * (endpoint-independent); otherwise tests to one IP on two ports that saw different addresses
 * mean address-and-port-dependent, tests to two IPs that saw different addresses mean
 * address-dependent if two to one IP saw the same, and tests to two IPs that saw one address
 * (test II seeing test I's) mean endpoint-independent. Filtering: an answer to test II (from the
 * alternate IP and port) means endpoint-independent; none to test II but one to test III (from
 * the alternate port) address-dependent; none to test III address-and-port-dependent. Answers
 * from the wrong address (a server ignoring CHANGE-REQUEST) and error responses count as no
 * test. Pure and total: any record gets a classification.
 */
export function classifyNat(observations: NatObservations): NatClassification {
  const o = observations;
  const evidence: string[] = [describeMapping("test I", o.primary, o.testI)];
  const hairpinning = o.hairpinning;
  if (o.testI.outcome !== "mapped") {
    const reason = "test I got no mapped address (UDP blocked, or the server is down)";
    evidence.push(reason);
    return {
      behindNat: undefined,
      mapping: undetermined([...NAT_BEHAVIORS], reason),
      filtering: undetermined([...NAT_BEHAVIORS], reason),
      classic: "unknown",
      hairpinning,
      evidence,
    };
  }
  const mapped = o.testI.mapped;
  if (o.otherAddress) evidence.push(`test I: OTHER-ADDRESS ${fmt(o.otherAddress)}`);
  else evidence.push("test I: no OTHER-ADDRESS (the server has no alternate address)");
  const behindNat = !o.localAddresses.some((local) => sameSocketAddress(local, mapped));
  let mapping: BehaviorFinding;
  if (behindNat) {
    evidence.push(`behind a NAT: ${fmt(mapped)} is not a local address`);
    mapping = classifyMapping(o, { label: "test I", destination: o.primary, mapped }, evidence);
  } else {
    evidence.push(`no NAT: ${fmt(mapped)} is a local address`);
    mapping = { behavior: "endpoint-independent" };
  }
  const filtering = classifyFiltering(o, evidence);
  if (!behindNat && filtering.behavior !== "endpoint-independent") {
    evidence.push("no NAT, but a firewall may filter what comes in");
  }
  if (hairpinning !== undefined) {
    evidence.push(`hairpinning: ${hairpinning ? "" : "not "}supported`);
  }
  return {
    behindNat,
    mapped,
    mapping,
    filtering,
    classic: classicName(behindNat, mapping, filtering),
    hairpinning,
    evidence,
  };
}
