/**
 * lib/stun/nat_behavior.ts: the RFC 5780 classifier on every combination of test outcomes
 * (test I local / mapped / unanswered / error; tests II and III absent, unanswered, error or
 * seeing each of three addresses; filtering tests II and III absent, unanswered, error,
 * answered from the right or the wrong address; with and without an alternate address),
 * checked against tables written out by hand, plus the cases around them: a server without an
 * alternate address (with and without a second server), an OTHER-ADDRESS sharing the
 * primary's IP, IPv6 text forms, a firewall without NAT, and the evidence lines.
 */
import assert from "node:assert/strict";
import type { SocketAddress } from "../lib/net/address.ts";
import {
  type BehaviorFinding,
  type ClassicNatType,
  classifyNat,
  type FilteringAnswer,
  type MappingAnswer,
  NAT_BEHAVIORS,
  type NatObservations,
} from "../lib/stun/mod.ts";

const PRIMARY = { hostname: "198.18.1.2", port: 3478 };
const OTHER = { hostname: "198.18.1.3", port: 3479 };
const LOCAL = { hostname: "10.0.0.2", port: 40000 };
const ADDRESSES: Record<"A" | "B" | "C", SocketAddress> = {
  A: { hostname: "198.18.10.2", port: 40000 },
  B: { hostname: "198.18.10.2", port: 40001 },
  C: { hostname: "198.18.10.2", port: 40002 },
};

type MappingToken = "absent" | "none" | "error" | "A" | "B" | "C";
type FilteringToken = "absent" | "none" | "error" | "ok" | "wrong";

function mappingAnswer(token: MappingToken): MappingAnswer | undefined {
  if (token === "absent") return undefined;
  if (token === "none") return { outcome: "no-answer" };
  if (token === "error") return { outcome: "error", code: 500, reason: "Server Error" };
  return { outcome: "mapped", mapped: ADDRESSES[token] };
}

function filteringAnswer(token: FilteringToken, right: SocketAddress): FilteringAnswer | undefined {
  if (token === "absent") return undefined;
  if (token === "none") return { outcome: "no-answer" };
  if (token === "error") return { outcome: "error", code: 420, reason: "Unknown Attribute" };
  return { outcome: "answered", from: token === "ok" ? right : PRIMARY };
}

/** A finding in short: "EI", "AD", "APD", or the possible ones joined by "|" if undetermined. */
function short(finding: BehaviorFinding): string {
  const name = {
    "endpoint-independent": "EI",
    "address-dependent": "AD",
    "address-and-port-dependent": "APD",
  } as const;
  if (finding.behavior !== "undetermined") return name[finding.behavior];
  assert.ok(finding.reason.length > 0);
  assert.ok(finding.possible.length >= 2, "undetermined leaves two or more");
  assert.deepEqual(finding.possible, NAT_BEHAVIORS.filter((b) => finding.possible.includes(b)));
  return finding.possible.map((b) => name[b]).join("|");
}

const ALL = "EI|AD|APD";

/** RFC 5780 §4.3, behind a NAT, test I seeing A: mapping by what tests II and III saw. */
const MAPPING: Record<string, string> = {
  // Test II told nothing: only test III (another IP and port) can.
  "absent/absent": ALL,
  "absent/none": ALL,
  "absent/error": ALL,
  "absent/A": "EI",
  "absent/B": "AD|APD",
  "absent/C": "AD|APD",
  "none/absent": ALL,
  "none/none": ALL,
  "none/error": ALL,
  "none/A": "EI",
  "none/B": "AD|APD",
  "none/C": "AD|APD",
  "error/absent": ALL,
  "error/none": ALL,
  "error/error": ALL,
  "error/A": "EI",
  "error/B": "AD|APD",
  "error/C": "AD|APD",
  // Test II saw test I's address: endpoint-independent, unless test III's port changed it.
  "A/absent": "EI",
  "A/none": "EI",
  "A/error": "EI",
  "A/A": "EI",
  "A/B": "APD",
  "A/C": "APD",
  // Test II saw another address: test III tells address from address-and-port.
  "B/absent": "AD|APD",
  "B/none": "AD|APD",
  "B/error": "AD|APD",
  "B/A": "APD",
  "B/B": "AD",
  "B/C": "APD",
};

/** RFC 5780 §4.4: filtering by what filtering tests II and III got. */
const FILTERING: Record<string, string> = {
  "ok/absent": "EI",
  "ok/none": "EI",
  "ok/error": "EI",
  "ok/ok": "EI",
  "ok/wrong": "EI",
  "none/absent": "AD|APD",
  "none/none": "APD",
  "none/error": "AD|APD",
  "none/ok": "AD",
  "none/wrong": "AD|APD",
  "absent/absent": ALL,
  "absent/none": "APD",
  "absent/error": ALL,
  "absent/ok": "EI|AD",
  "absent/wrong": ALL,
  "error/absent": ALL,
  "error/none": "APD",
  "error/error": ALL,
  "error/ok": "EI|AD",
  "error/wrong": ALL,
  "wrong/absent": ALL,
  "wrong/none": "APD",
  "wrong/error": ALL,
  "wrong/ok": "EI|AD",
  "wrong/wrong": ALL,
};

/** The classic name behind a NAT, by mapping then filtering. */
function classic(mapping: string, filtering: string): ClassicNatType {
  if (mapping === "AD" || mapping === "APD" || mapping === "AD|APD") return "symmetric";
  if (mapping !== "EI") return "unknown";
  return ({ EI: "full cone", AD: "restricted cone", APD: "port-restricted cone" } as const)[
    filtering as "EI"
  ] ?? "unknown";
}

const MAPPING_TOKENS: MappingToken[] = ["absent", "none", "error", "A", "B", "C"];
const FILTERING_TOKENS: FilteringToken[] = ["absent", "none", "error", "ok", "wrong"];

Deno.test("every combination of outcomes classifies as the tables say", () => {
  let combinations = 0;
  for (const first of ["local", "A", "none", "error"] as const) {
    for (const two of MAPPING_TOKENS.filter((t) => t !== "C")) {
      for (const three of MAPPING_TOKENS) {
        for (const filterTwo of FILTERING_TOKENS) {
          for (const filterThree of FILTERING_TOKENS) {
            for (const alternate of [true, false]) {
              combinations++;
              const hairpinning = [true, false, undefined][combinations % 3];
              const observations: NatObservations = {
                localAddresses: first === "local" ? [LOCAL, ADDRESSES.A] : [LOCAL],
                primary: PRIMARY,
                otherAddress: alternate ? OTHER : undefined,
                testI: first === "none"
                  ? { outcome: "no-answer" }
                  : first === "error"
                  ? { outcome: "error", code: 401 }
                  : { outcome: "mapped", mapped: ADDRESSES.A },
                testII: mappingAnswer(two),
                testIII: mappingAnswer(three),
                filteringII: filteringAnswer(filterTwo, OTHER),
                filteringIII: filteringAnswer(filterThree, {
                  hostname: PRIMARY.hostname,
                  port: 3479,
                }),
                hairpinning,
              };
              const result = classifyNat(observations);
              const where = `${first} ${two}/${three} ${filterTwo}/${filterThree} ${alternate}`;
              const mapping = short(result.mapping);
              const filtering = short(result.filtering);
              assert.equal(result.hairpinning, hairpinning);
              assert.match(result.evidence[0], /^test I: /);
              if (first === "none" || first === "error") {
                assert.equal(result.behindNat, undefined, where);
                assert.equal(result.mapped, undefined);
                assert.deepEqual(
                  [mapping, filtering, result.classic],
                  [ALL, ALL, "unknown"],
                  where,
                );
                continue;
              }
              assert.deepEqual(result.mapped, ADDRESSES.A);
              const expectedFiltering = alternate ? FILTERING[`${filterTwo}/${filterThree}`] : ALL;
              assert.equal(filtering, expectedFiltering, where);
              if (first === "local") {
                assert.equal(result.behindNat, false);
                assert.equal(mapping, "EI", where);
                assert.equal(result.classic, "open", where);
                continue;
              }
              assert.equal(result.behindNat, true);
              const expectedMapping = alternate ? MAPPING[`${two}/${three}`] : ALL;
              assert.equal(mapping, expectedMapping, where);
              assert.equal(result.classic, classic(expectedMapping, expectedFiltering), where);
            }
          }
        }
      }
    }
  }
  assert.equal(combinations, 4 * 5 * 6 * 5 * 5 * 2);
});

Deno.test("evidence reads as lines about each answer", () => {
  const result = classifyNat({
    localAddresses: [LOCAL],
    primary: PRIMARY,
    otherAddress: OTHER,
    testI: { outcome: "mapped", mapped: ADDRESSES.A },
    testII: { outcome: "mapped", mapped: ADDRESSES.B },
    testIII: { outcome: "mapped", mapped: ADDRESSES.B },
    filteringII: { outcome: "no-answer" },
    filteringIII: { outcome: "answered", from: { hostname: "198.18.1.2", port: 3479 } },
    hairpinning: false,
  });
  assert.deepEqual(result.mapping, { behavior: "address-dependent" });
  assert.deepEqual(result.filtering, { behavior: "address-dependent" });
  assert.equal(result.classic, "symmetric");
  assert.deepEqual(result.evidence, [
    "test I: 198.18.1.2:3478 saw us at 198.18.10.2:40000",
    "test I: OTHER-ADDRESS 198.18.1.3:3479",
    "behind a NAT: 198.18.10.2:40000 is not a local address",
    "test II: 198.18.1.3:3478 saw us at 198.18.10.2:40001",
    "test III: 198.18.1.3:3479 saw us at 198.18.10.2:40001",
    "mapping: test I (198.18.1.2:3478) and test II (198.18.1.3:3478) saw us at different addresses",
    "mapping: test II (198.18.1.3:3478) and test III (198.18.1.3:3479) share an IP and saw us at one address",
    "filtering test II (change IP and port): no answer (expected from 198.18.1.3:3479)",
    "filtering test III (change port): answer from 198.18.1.2:3479",
    "hairpinning: not supported",
  ]);
});

Deno.test("no alternate address: a second server tells endpoint-independent from the rest, not AD from APD", () => {
  const base: NatObservations = {
    localAddresses: [LOCAL],
    primary: PRIMARY,
    testI: { outcome: "mapped", mapped: ADDRESSES.A },
    filteringII: { outcome: "error", code: 420, reason: "Unknown Attribute" },
    filteringIII: { outcome: "error", code: 420, reason: "Unknown Attribute" },
  };
  const server = { hostname: "203.0.113.7", port: 3478 };
  const alone = classifyNat(base);
  assert.equal(short(alone.mapping), ALL);
  assert.match((alone.mapping as { reason: string }).reason, /no alternate address/);
  assert.equal(short(alone.filtering), ALL);
  assert.match((alone.filtering as { reason: string }).reason, /no alternate address/);
  assert.equal(alone.classic, "unknown");

  const same = classifyNat({
    ...base,
    otherServer: { server, answer: { outcome: "mapped", mapped: ADDRESSES.A } },
  });
  assert.deepEqual(same.mapping, { behavior: "endpoint-independent" });
  assert.equal(same.classic, "unknown", "filtering still unknown, so which cone is unknown");
  assert.ok(same.evidence.includes("other server: 203.0.113.7:3478 saw us at 198.18.10.2:40000"));

  const differs = classifyNat({
    ...base,
    otherServer: { server, answer: { outcome: "mapped", mapped: ADDRESSES.C } },
  });
  assert.equal(short(differs.mapping), "AD|APD");
  assert.match((differs.mapping as { reason: string }).reason, /server has no alternate address/);
  assert.equal(differs.classic, "symmetric", "either way not endpoint-independent");

  const silent = classifyNat({
    ...base,
    otherServer: { server, answer: { outcome: "no-answer" } },
  });
  assert.equal(short(silent.mapping), ALL);
  // Tests II and III given without OTHER-ADDRESS have no destination: ignored, and said so.
  const stray = classifyNat({ ...base, testII: { outcome: "mapped", mapped: ADDRESSES.B } });
  assert.equal(short(stray.mapping), ALL);
  assert.ok(
    stray.evidence.includes("test II ignored: without OTHER-ADDRESS it has no destination"),
  );
});

Deno.test("an OTHER-ADDRESS sharing the primary's IP: no IP change, but port tests still count", () => {
  const samePort = { hostname: PRIMARY.hostname, port: 3479 };
  const base: NatObservations = {
    localAddresses: [LOCAL],
    primary: PRIMARY,
    otherAddress: samePort,
    testI: { outcome: "mapped", mapped: ADDRESSES.A },
  };
  // Test II then goes to the primary itself: no information; test III changes only the port.
  const portKept = classifyNat({
    ...base,
    testII: { outcome: "mapped", mapped: ADDRESSES.A },
    testIII: { outcome: "mapped", mapped: ADDRESSES.A },
  });
  assert.equal(short(portKept.mapping), "EI|AD");
  const portChanged = classifyNat({ ...base, testIII: { outcome: "mapped", mapped: ADDRESSES.B } });
  assert.equal(short(portChanged.mapping), "APD");
  // Filtering test II cannot change the IP, so it counts for nothing; test III does.
  const filtered = classifyNat({
    ...base,
    filteringII: { outcome: "answered", from: samePort },
    filteringIII: { outcome: "answered", from: samePort },
  });
  assert.equal(short(filtered.filtering), "EI|AD");
  assert.ok(filtered.evidence.includes("OTHER-ADDRESS 198.18.1.2:3479 shares the primary's IP"));
});

Deno.test("no NAT: IPv6 text forms compare as addresses; a firewall's filtering is still reported", () => {
  const local = { hostname: "2001:0db8:0000::0001", port: 5000 };
  const result = classifyNat({
    localAddresses: [local],
    primary: { hostname: "2001:db8:1::2", port: 3478 },
    otherAddress: { hostname: "2001:db8:1::3", port: 3479 },
    testI: { outcome: "mapped", mapped: { hostname: "2001:db8::1", port: 5000 } },
    filteringII: { outcome: "no-answer" },
    filteringIII: { outcome: "no-answer" },
  });
  assert.equal(result.behindNat, false);
  assert.deepEqual(result.mapping, { behavior: "endpoint-independent" });
  assert.deepEqual(result.filtering, { behavior: "address-and-port-dependent" });
  assert.equal(result.classic, "open");
  assert.equal(result.evidence[0], "test I: [2001:db8:1::2]:3478 saw us at [2001:db8::1]:5000");
  assert.ok(result.evidence.includes("no NAT, but a firewall may filter what comes in"));
  // The same port on another address, or no local addresses at all, is a NAT.
  for (const localAddresses of [[{ ...ADDRESSES.A, hostname: "198.18.10.3" }], []]) {
    const natted = classifyNat({
      localAddresses,
      primary: PRIMARY,
      testI: { outcome: "mapped", mapped: ADDRESSES.A },
    });
    assert.equal(natted.behindNat, true);
  }
});

Deno.test("a server ignoring CHANGE-REQUEST answers from the wrong address: filtering undetermined", () => {
  const result = classifyNat({
    localAddresses: [LOCAL],
    primary: PRIMARY,
    otherAddress: OTHER,
    testI: { outcome: "mapped", mapped: ADDRESSES.A },
    testII: { outcome: "mapped", mapped: ADDRESSES.A },
    filteringII: { outcome: "answered", from: PRIMARY },
    filteringIII: { outcome: "answered", from: PRIMARY },
  });
  assert.equal(short(result.filtering), ALL);
  assert.equal(result.classic, "unknown");
  assert.ok(result.evidence.includes(
    "filtering test II (change IP and port): answer from 198.18.1.2:3478, not 198.18.1.3:3479: " +
      "the server did not honour CHANGE-REQUEST",
  ));
});
