/** RFC 5780 §4.4, filtering behaviour, from the two CHANGE-REQUEST tests. */
import { formatAddress as fmt, type SocketAddress } from "../net/address.ts";
import {
  type BehaviorFinding,
  describeError,
  type FilteringAnswer,
  NAT_BEHAVIORS,
  type NatObservations,
  undetermined,
} from "./nat_results.ts";
import { sameIp, sameSocketAddress } from "./socket_address.ts";

/** A filtering test's answer: through (from where it should be), blocked, or of no use. */
type FilterResult = "through" | "blocked" | "useless";

function filteringResult(
  label: string,
  answer: FilteringAnswer | undefined,
  expected: SocketAddress | undefined,
  evidence: string[],
): FilterResult {
  if (!answer) return "useless";
  if (!expected) {
    evidence.push(`${label} ignored: the server cannot answer from another address`);
    return "useless";
  }
  switch (answer.outcome) {
    case "answered":
      if (sameSocketAddress(answer.from, expected)) {
        evidence.push(`${label}: answer from ${fmt(answer.from)}`);
        return "through";
      }
      evidence.push(
        `${label}: answer from ${fmt(answer.from)}, not ${fmt(expected)}: the server did not ` +
          "honour CHANGE-REQUEST",
      );
      return "useless";
    case "no-answer":
      evidence.push(`${label}: no answer (expected from ${fmt(expected)})`);
      return "blocked";
    case "error":
      evidence.push(`${label}: ${describeError(answer)}`);
      return "useless";
  }
}

/**
 * The filtering behaviour (of a NAT, or a firewall): an answer to filtering test II from the
 * alternate IP and port means endpoint-independent; none to test II but one to test III from
 * the alternate port, address-dependent; none to test III, address-and-port-dependent. Answers
 * from the wrong address (a server ignoring CHANGE-REQUEST), error responses, and tests the
 * alternate address cannot serve count as not run. Appends evidence lines.
 */
export function classifyFiltering(o: NatObservations, evidence: string[]): BehaviorFinding {
  const other = o.otherAddress;
  const changesIp = other !== undefined && !sameIp(other.hostname, o.primary.hostname);
  const changesPort = other !== undefined && other.port !== o.primary.port;
  if (other && (!changesIp || !changesPort)) {
    evidence.push(
      `OTHER-ADDRESS ${fmt(other)} shares the primary's ${changesIp ? "port" : "IP"}`,
    );
  }
  const two = filteringResult(
    "filtering test II (change IP and port)",
    o.filteringII,
    changesIp && changesPort ? other : undefined,
    evidence,
  );
  const three = filteringResult(
    "filtering test III (change port)",
    o.filteringIII,
    other && changesPort ? { hostname: o.primary.hostname, port: other.port } : undefined,
    evidence,
  );
  if (two === "through") {
    if (three === "blocked") {
      evidence.push("filtering test III got no answer though test II did: lost, presumably");
    }
    return { behavior: "endpoint-independent" };
  }
  if (three === "blocked") return { behavior: "address-and-port-dependent" };
  if (two === "blocked") {
    if (three === "through") return { behavior: "address-dependent" };
    return undetermined(
      ["address-dependent", "address-and-port-dependent"],
      "filtering test II got no answer, and test III none that counts",
    );
  }
  if (three === "through") {
    return undetermined(
      ["endpoint-independent", "address-dependent"],
      "filtering test III got through, and test II got no answer that counts",
    );
  }
  return undetermined(
    [...NAT_BEHAVIORS],
    other
      ? "no filtering test got an answer that counts"
      : "the server has no alternate address, so it cannot answer from another IP or port",
  );
}
