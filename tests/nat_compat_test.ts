/** Which pairs of NAT behaviours leave a direct path to find (pure code). */
import assert from "node:assert/strict";
import { directPathHopeless, type NatSummary } from "../lib/session/nat_compat.ts";

const EIM = "endpoint-independent", ADM = "address-dependent", APDM = "address-and-port-dependent";
const nat = (mapping: NatSummary["mapping"], filtering: NatSummary["filtering"]): NatSummary => ({
  mapping,
  filtering,
});
const open = nat(EIM, EIM);
const fullCone = nat(EIM, EIM);
const restricted = nat(EIM, ADM);
const portRestricted = nat(EIM, APDM);
const symmetric = nat(APDM, APDM);

Deno.test("direct paths: hopeless only when one end's mapping varies and nothing admits it", () => {
  const cases: [NatSummary | null, NatSummary | null, boolean][] = [
    [open, symmetric, false],
    [fullCone, symmetric, false],
    [restricted, symmetric, false],
    [portRestricted, portRestricted, false],
    [portRestricted, symmetric, true],
    [symmetric, portRestricted, true],
    [symmetric, symmetric, true],
    [nat(ADM, ADM), nat(ADM, EIM), true],
    // Unknown parts never make a pair hopeless: punch and see.
    [symmetric, nat("unknown", "unknown"), false],
    [portRestricted, nat(APDM, "unknown"), true],
    [null, symmetric, false],
    [symmetric, null, false],
  ];
  for (const [ours, theirs, hopeless] of cases) {
    const why = directPathHopeless(ours, theirs);
    assert.equal(
      why !== null,
      hopeless,
      `${JSON.stringify(ours)} ↔ ${JSON.stringify(theirs)}: ${why}`,
    );
  }
  assert.match(directPathHopeless(symmetric, symmetric)!, /both NATs map each destination/);
  assert.match(
    directPathHopeless(portRestricted, symmetric)!,
    /the peer's NAT maps each destination to its own port and our NAT admits only/,
  );
});
