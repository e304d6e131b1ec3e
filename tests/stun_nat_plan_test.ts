/**
 * lib/stun/nat_plan.ts: the requests planned for a server with and without an alternate
 * address, and the plan run through simulated NATs of all nine RFC 4787 kinds (and no NAT):
 * answered the way such a NAT and an RFC 5780 server would answer, the classifier names each
 * NAT for what it is. Also why the filtering tests get a fresh socket.
 */
import assert from "node:assert/strict";
import type { SocketAddress } from "../lib/net/address.ts";
import {
  type ClassicNatType,
  classifyNat,
  type FilteringAnswer,
  type MappingAnswer,
  NAT_BEHAVIORS,
  type NatBehavior,
  type NatObservations,
  type NatTestSocket,
  planNatTests,
  type PlannedRequest,
  sameIp,
  sameSocketAddress,
} from "../lib/stun/mod.ts";

const PRIMARY = { hostname: "198.18.1.2", port: 3478 };
const OTHER = { hostname: "198.18.1.3", port: 3479 };
const SECOND_SERVER = { hostname: "203.0.113.7", port: 3478 };

Deno.test("plan: RFC 5780's five requests, mapping ones from one socket, filtering from another", () => {
  assert.deepEqual(
    planNatTests(PRIMARY, OTHER).map((r) => [
      r.test,
      r.socket,
      `${r.destination.hostname}:${r.destination.port}`,
      r.changeIp,
      r.changePort,
      `${r.expectFrom.hostname}:${r.expectFrom.port}`,
    ]),
    [
      ["testI", "mapping", "198.18.1.2:3478", false, false, "198.18.1.2:3478"],
      ["testII", "mapping", "198.18.1.3:3478", false, false, "198.18.1.3:3478"],
      ["testIII", "mapping", "198.18.1.3:3479", false, false, "198.18.1.3:3479"],
      ["filteringII", "filtering", "198.18.1.2:3478", true, true, "198.18.1.3:3479"],
      ["filteringIII", "filtering", "198.18.1.2:3478", false, true, "198.18.1.2:3479"],
    ],
  );
  for (const request of planNatTests(PRIMARY, OTHER)) assert.ok(request.purpose.length > 0);
});

Deno.test("plan: without an alternate address only test I (and a second server, if given)", () => {
  assert.deepEqual(planNatTests(PRIMARY).map((r) => r.test), ["testI"]);
  assert.deepEqual(
    planNatTests(PRIMARY, undefined, { otherServer: SECOND_SERVER }).map((r) => [r.test, r.socket]),
    [["testI", "mapping"], ["otherServer", "mapping"]],
  );
  assert.deepEqual(
    planNatTests(PRIMARY, undefined, { otherServer: { ...PRIMARY } }).map((r) => r.test),
    ["testI"],
  );
  assert.deepEqual(
    planNatTests(PRIMARY, OTHER, { otherServer: SECOND_SERVER }).map((r) => r.test),
    ["testI", "testII", "testIII", "otherServer", "filteringII", "filteringIII"],
  );
});

Deno.test("plan: an OTHER-ADDRESS sharing the primary's IP or port drops the tests it cannot serve", () => {
  assert.deepEqual(
    planNatTests(PRIMARY, { hostname: PRIMARY.hostname, port: 3479 }).map((r) => r.test),
    ["testI", "testIII", "filteringIII"],
  );
  assert.deepEqual(
    planNatTests(PRIMARY, { hostname: OTHER.hostname, port: PRIMARY.port }).map((r) => r.test),
    ["testI", "testII", "testIII"],
  );
  assert.deepEqual(planNatTests(PRIMARY, { ...PRIMARY }).map((r) => r.test), ["testI"]);
});

/** A NAT of one RFC 4787 kind, or none (then only a firewall filtering, if any). */
class SimulatedNat {
  readonly #mappings = new Map<string, { external: SocketAddress; sentTo: SocketAddress[] }>();
  #nextPort = 50000;

  constructor(
    readonly mapping: NatBehavior | "none",
    readonly filtering: NatBehavior,
  ) {}

  /** Sends from a local port to `destination`; returns the source address the server sees. */
  send(localPort: number, destination: SocketAddress): SocketAddress {
    const key = this.mapping === "endpoint-independent" || this.mapping === "none"
      ? `${localPort}`
      : this.mapping === "address-dependent"
      ? `${localPort} ${destination.hostname}`
      : `${localPort} ${destination.hostname}:${destination.port}`;
    let entry = this.#mappings.get(key);
    if (!entry) {
      const external = this.mapping === "none"
        ? { hostname: "192.0.2.10", port: localPort }
        : { hostname: "198.18.10.2", port: this.#nextPort++ };
      entry = { external, sentTo: [] };
      this.#mappings.set(key, entry);
    }
    entry.sentTo.push(destination);
    return entry.external;
  }

  /** Whether a datagram from `source` to our external address gets in. */
  admits(external: SocketAddress, source: SocketAddress): boolean {
    const sent = [...this.#mappings.values()].filter((m) => sameSocketAddress(m.external, external))
      .flatMap((m) => m.sentTo);
    switch (this.filtering) {
      case "endpoint-independent":
        return true;
      case "address-dependent":
        return sent.some((d) => sameIp(d.hostname, source.hostname));
      case "address-and-port-dependent":
        return sent.some((d) => sameSocketAddress(d, source));
    }
  }
}

/** Where an RFC 5780 server answers from (RFC 5780 §6.1's table), or none if it cannot. */
function serverSource(
  request: PlannedRequest,
  alternate: SocketAddress | undefined,
  honoursChange: boolean,
): SocketAddress | undefined {
  const to = request.destination;
  if (!request.changeIp && !request.changePort || !honoursChange) return to;
  if (!alternate) return undefined; // A 420 in truth; nothing that gets through, here.
  const [primary, other] = [PRIMARY, alternate];
  const otherIp = sameIp(to.hostname, primary.hostname) ? other.hostname : primary.hostname;
  const otherPort = to.port === primary.port ? other.port : primary.port;
  return {
    hostname: request.changeIp ? otherIp : to.hostname,
    port: request.changePort ? otherPort : to.port,
  };
}

/** Runs a plan through a simulated NAT; `ports` picks each socket's local port. */
function run(
  nat: SimulatedNat,
  options: {
    alternate?: SocketAddress;
    otherServer?: SocketAddress;
    ports?: Record<NatTestSocket, number>;
    honoursChange?: boolean;
  } = {},
): NatObservations {
  const ports = options.ports ?? { mapping: 40000, filtering: 40001 };
  const plan = planNatTests(PRIMARY, options.alternate, { otherServer: options.otherServer });
  const observations: NatObservations = {
    localAddresses: [{ hostname: "192.0.2.10", port: ports.mapping }],
    primary: PRIMARY,
    otherAddress: options.alternate,
    testI: { outcome: "no-answer" },
  };
  for (const request of plan) {
    const external = nat.send(ports[request.socket], request.destination);
    const source = serverSource(request, options.alternate, options.honoursChange ?? true);
    const through = source !== undefined && nat.admits(external, source);
    if (request.socket === "mapping") {
      const answer: MappingAnswer = through
        ? { outcome: "mapped", mapped: external }
        : { outcome: "no-answer" };
      if (request.test === "otherServer") {
        observations.otherServer = { server: request.destination, answer };
      } else observations[request.test as "testI" | "testII" | "testIII"] = answer;
    } else {
      const answer: FilteringAnswer = through
        ? { outcome: "answered", from: source! }
        : { outcome: "no-answer" };
      observations[request.test as "filteringII" | "filteringIII"] = answer;
    }
  }
  return observations;
}

const CLASSIC: Record<NatBehavior, ClassicNatType> = {
  "endpoint-independent": "full cone",
  "address-dependent": "restricted cone",
  "address-and-port-dependent": "port-restricted cone",
};

Deno.test("the plan run through each of the nine NAT kinds names it", () => {
  for (const mapping of NAT_BEHAVIORS) {
    for (const filtering of NAT_BEHAVIORS) {
      const result = classifyNat(run(new SimulatedNat(mapping, filtering), { alternate: OTHER }));
      const where = `${mapping} mapping, ${filtering} filtering`;
      assert.equal(result.behindNat, true, where);
      assert.deepEqual(result.mapping, { behavior: mapping }, where);
      assert.deepEqual(result.filtering, { behavior: filtering }, where);
      assert.equal(
        result.classic,
        mapping === "endpoint-independent" ? CLASSIC[filtering] : "symmetric",
        where,
      );
    }
  }
});

Deno.test("the plan without a NAT: open, with the firewall's filtering", () => {
  for (const filtering of NAT_BEHAVIORS) {
    const result = classifyNat(run(new SimulatedNat("none", filtering), { alternate: OTHER }));
    assert.equal(result.behindNat, false);
    assert.deepEqual(result.mapping, { behavior: "endpoint-independent" });
    assert.deepEqual(result.filtering, { behavior: filtering });
    assert.equal(result.classic, "open");
  }
});

Deno.test("the plan against a server without an alternate address, with a second server", () => {
  for (const mapping of NAT_BEHAVIORS) {
    const result = classifyNat(
      run(new SimulatedNat(mapping, "endpoint-independent"), { otherServer: SECOND_SERVER }),
    );
    if (mapping === "endpoint-independent") {
      assert.deepEqual(result.mapping, { behavior: mapping });
    } else {
      assert.equal(result.mapping.behavior, "undetermined");
      assert.deepEqual((result.mapping as { possible: NatBehavior[] }).possible, [
        "address-dependent",
        "address-and-port-dependent",
      ]);
      assert.equal(result.classic, "symmetric");
    }
    assert.equal(result.filtering.behavior, "undetermined");
  }
});

Deno.test("why a fresh socket: filtering tests sent after tests II and III make a port-restricted NAT look full-cone", () => {
  const nat = new SimulatedNat("endpoint-independent", "address-and-port-dependent");
  const shared = classifyNat(
    run(nat, { alternate: OTHER, ports: { mapping: 40000, filtering: 40000 } }),
  );
  assert.deepEqual(shared.filtering, { behavior: "endpoint-independent" }, "the wrong answer");
  const fresh = classifyNat(
    run(new SimulatedNat("endpoint-independent", "address-and-port-dependent"), {
      alternate: OTHER,
    }),
  );
  assert.deepEqual(fresh.filtering, { behavior: "address-and-port-dependent" });
});

Deno.test("a server that ignores CHANGE-REQUEST is caught by where its answers come from", () => {
  const result = classifyNat(
    run(new SimulatedNat("endpoint-independent", "address-and-port-dependent"), {
      alternate: OTHER,
      honoursChange: false,
    }),
  );
  assert.equal(result.filtering.behavior, "undetermined");
  assert.equal(result.classic, "unknown");
});
