/** RFC 5780 §4.3, mapping behaviour, generalized to whichever answered tests can be compared. */
import { formatAddress as fmt, type SocketAddress } from "../net/address.ts";
import {
  type BehaviorFinding,
  describeError,
  type MappingAnswer,
  NAT_BEHAVIORS,
  type NatObservations,
  undetermined,
} from "./nat_results.ts";
import { sameIp, sameSocketAddress } from "./socket_address.ts";

/** A mapping test that got an address. */
interface Probe {
  label: string;
  destination: SocketAddress;
  mapped: SocketAddress;
}

/** "test I: 198.18.1.2:3478 saw us at 198.18.10.2:40000", or what else the test got. */
export function describeMapping(
  label: string,
  destination: SocketAddress,
  answer: MappingAnswer,
): string {
  switch (answer.outcome) {
    case "mapped":
      return `${label}: ${fmt(destination)} saw us at ${fmt(answer.mapped)}`;
    case "no-answer":
      return `${label}: no answer from ${fmt(destination)}`;
    case "error":
      return `${label}: ${fmt(destination)} answered ${describeError(answer)}`;
  }
}

/** The mapping tests after test I, with where each went; those that cannot have run are noted. */
function otherMappingTests(
  o: NatObservations,
  evidence: string[],
): Array<{ label: string; destination: SocketAddress; answer: MappingAnswer }> {
  const tests: Array<{ label: string; destination: SocketAddress; answer: MappingAnswer }> = [];
  const other = o.otherAddress;
  for (
    const [label, answer, destination] of [
      ["test II", o.testII, other && { hostname: other.hostname, port: o.primary.port }],
      ["test III", o.testIII, other],
    ] as const
  ) {
    if (!answer) continue;
    if (!destination) {
      evidence.push(`${label} ignored: without OTHER-ADDRESS it has no destination`);
    } else tests.push({ label, destination, answer });
  }
  if (o.otherServer) {
    tests.push({
      label: "other server",
      destination: o.otherServer.server,
      answer: o.otherServer.answer,
    });
  }
  return tests;
}

/**
 * The mapping behaviour behind a NAT, from test I's answer (`first`) and the other mapping
 * tests': tests to one IP on two ports seeing different addresses mean address-and-port-
 * dependent; tests to two IPs seeing different addresses mean address-dependent if two to one IP
 * saw the same (else one of the two); tests to two IPs seeing one address (test II seeing test
 * I's) mean endpoint-independent. Appends an evidence line per answer and per conclusion.
 */
export function classifyMapping(
  o: NatObservations,
  first: { label: string; destination: SocketAddress; mapped: SocketAddress },
  evidence: string[],
): BehaviorFinding {
  const probes = [first];
  for (const test of otherMappingTests(o, evidence)) {
    evidence.push(describeMapping(test.label, test.destination, test.answer));
    if (test.answer.outcome === "mapped") probes.push({ ...test, mapped: test.answer.mapped });
  }
  // Pairs of answered tests: to one IP on two ports, or to two IPs; same or different mapping.
  let portDependent: [Probe, Probe] | undefined;
  let portIndependent: [Probe, Probe] | undefined;
  let ipDependent: [Probe, Probe] | undefined;
  let ipIndependent: [Probe, Probe] | undefined;
  for (let i = 0; i < probes.length; i++) {
    for (let j = i + 1; j < probes.length; j++) {
      const [a, b] = [probes[i], probes[j]];
      const same = sameSocketAddress(a.mapped, b.mapped);
      if (sameIp(a.destination.hostname, b.destination.hostname)) {
        if (a.destination.port === b.destination.port) continue; // One destination twice.
        if (same) portIndependent ??= [a, b];
        else portDependent ??= [a, b];
      } else if (same) ipIndependent ??= [a, b];
      else ipDependent ??= [a, b];
    }
  }
  const pair = ([a, b]: [Probe, Probe]) =>
    `${a.label} (${fmt(a.destination)}) and ${b.label} (${fmt(b.destination)})`;
  if (portDependent) {
    evidence.push(
      `mapping: ${pair(portDependent)} share an IP but saw us at different addresses`,
    );
    return { behavior: "address-and-port-dependent" };
  }
  if (ipDependent) {
    evidence.push(`mapping: ${pair(ipDependent)} saw us at different addresses`);
    if (portIndependent) {
      evidence.push(`mapping: ${pair(portIndependent)} share an IP and saw us at one address`);
      return { behavior: "address-dependent" };
    }
    return undetermined(
      ["address-dependent", "address-and-port-dependent"],
      "the mapping varies with the destination, but no two answered tests went to one IP on " +
        "two ports" + (o.otherAddress ? "" : " (the server has no alternate address)"),
    );
  }
  if (ipIndependent) {
    evidence.push(`mapping: ${pair(ipIndependent)} saw us at one address`);
    return { behavior: "endpoint-independent" };
  }
  if (portIndependent) {
    return undetermined(
      ["endpoint-independent", "address-dependent"],
      "the mapping does not vary with the destination port, but no test to a second IP was " +
        "answered",
    );
  }
  return undetermined(
    [...NAT_BEHAVIORS],
    o.otherAddress || o.otherServer
      ? "no test to a second IP was answered"
      : "the server has no alternate address (test I's answer had no OTHER-ADDRESS), so " +
        "tests II and III cannot be run",
  );
}
