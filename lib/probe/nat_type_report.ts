/** The text report of `ztna probe nat-type`: the verdict, then the evidence it rests on. */
import { formatAddress } from "../net/address.ts";
import type { NatCheckResult } from "../natcheck/result.ts";
import { type BehaviorFinding, type ClassicNatType, sameSocketAddress } from "../stun/mod.ts";

function finding(value: BehaviorFinding): string {
  if (value.behavior !== "undetermined") return value.behavior;
  return `undetermined (${value.possible.join(" or ")}): ${value.reason}`;
}

function classic(name: ClassicNatType): string {
  switch (name) {
    case "open":
      return "open (no NAT)";
    case "unknown":
      return "unknown (not enough answers: see mapping and filtering)";
    default:
      return name;
  }
}

/** Renders a result as aligned text lines. */
export function formatNatTypeReport(result: NatCheckResult): string {
  const c = result.classification;
  const row = (label: string, value: string, indent = 2) =>
    `${" ".repeat(indent)}${label.padEnd(16 - indent)}${value}`.trimEnd();
  const server = formatAddress(result.server);
  const alternate = result.otherAddress
    ? `alternate ${formatAddress(result.otherAddress)}`
    : "no alternate address";
  const hairpinning = c.hairpinning === undefined
    ? (c.behindNat === false ? "not applicable (no NAT)" : "not tested")
    : c.hairpinning
    ? "supported"
    : "not supported";
  // A wildcard socket sends from every interface: without a NAT, the one the server saw;
  // behind one, every interface but loopback (which says nothing about the NAT).
  const seen = result.localAddresses.filter((a) => c.mapped && sameSocketAddress(a, c.mapped));
  const outside = result.localAddresses.filter((a) => !/^(127\.|::1$)/.test(a.hostname));
  const local = seen.length > 0 ? seen : outside.length > 0 ? outside : result.localAddresses;
  return [
    `NAT type: ${classic(c.classic)}`,
    row("mapping", finding(c.mapping)),
    row("filtering", finding(c.filtering)),
    row("public", result.publicAddresses.map(formatAddress).join(", ") || "none seen"),
    row("local", local.map(formatAddress).join(", ") || "unknown"),
    row("hairpinning", hairpinning),
    row("server", `${server} (${alternate})`),
    row("evidence", ""),
    ...c.evidence.map((line) => `    ${line}`),
    row("took", `${result.durationMs} ms`),
  ].join("\n");
}
