/**
 * lib/natcheck on loopback, against the relay's STUN responder (127.0.0.1 and 127.0.0.2, two
 * ports) and against hand-made servers: the tests made and their order, what a server without
 * alternates leaves undetermined, the second-socket choices, retransmission and its timing,
 * a silent server, abort, and the endpoint's STUN bytes held only while a check runs.
 */
import assert from "node:assert/strict";
import { decodeSockaddr, formatAddress } from "../lib/net/address.ts";
import { UdpSocket } from "../lib/net/udp_socket.ts";
import { checkNat, NatCheckError, type NatCheckResult } from "../lib/natcheck/mod.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import { Relay } from "../lib/relay/relay.ts";
import { StunServer } from "../lib/relay/stun_server.ts";
import { answerStun } from "../lib/stun/mod.ts";
import { makeTestOrg, startNode, stopNode } from "./support/nodes.ts";

/** A relay with its STUN responder on 127.0.0.1; `alternates` as asked. */
async function withRelay(
  alternates: { ip?: boolean; port?: boolean },
  body: (
    relay: Relay,
    stun: StunServer,
    org: Awaited<ReturnType<typeof makeTestOrg>>,
  ) => Promise<void>,
): Promise<void> {
  const org = await makeTestOrg("natcheck");
  const files = await org.issue("relay-1", "relay");
  const relay = Relay.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    certificateFile: files.certPath,
    privateKeyFile: files.keyPath,
    caFile: org.caPath,
  });
  try {
    const stun = StunServer.start({
      endpoint: relay.endpoint,
      alternateIp: alternates.ip ? "127.0.0.2" : undefined,
      alternatePort: alternates.port ? freePort() : undefined,
    });
    try {
      await body(relay, stun, org);
    } finally {
      await stun.close();
    }
  } finally {
    await relay.close();
    await org.cleanup();
  }
}

/** A UDP port free on 127.0.0.1 and 127.0.0.2 a moment ago. */
function freePort(): number {
  for (;;) {
    const probe = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    try {
      Deno.listenDatagram({ hostname: "127.0.0.2", port, transport: "udp" }).close();
      return port;
    } catch {
      // Taken on 127.0.0.2.
    }
  }
}

async function withEndpoint<T>(body: (endpoint: Endpoint) => Promise<T>): Promise<T> {
  const endpoint = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  try {
    return await body(endpoint);
  } finally {
    await endpoint.close();
  }
}

const summary = (r: NatCheckResult) => ({
  classic: r.classification.classic,
  mapping: r.classification.mapping.behavior,
  filtering: r.classification.filtering.behavior,
  tests: r.tests.map((t) => `${t.test}:${t.outcome}`),
});

Deno.test("natcheck: full RFC 5780 run on loopback, filtering tests before the alternate address is contacted", async () => {
  await withRelay({ ip: true, port: true }, async (relay, stun) => {
    await withEndpoint(async (endpoint) => {
      const result = await checkNat(endpoint, { server: relay.address });
      const alternate = { hostname: "127.0.0.2", port: stun.addresses.alternatePort! };
      assert.deepEqual(summary(result), {
        classic: "open",
        mapping: "endpoint-independent",
        filtering: "endpoint-independent",
        tests: [
          "testI:answered",
          // Both filtering tests, in either order; test III is skipped: test II saw test I's
          // address; no hairpinning test without a NAT.
          ...result.tests.slice(1, 3).map((t) => `${t.test}:answered`),
          "testII:answered",
        ],
      });
      assert.deepEqual(result.tests.slice(1, 3).map((t) => t.test).sort(), [
        "filteringII",
        "filteringIII",
      ]);
      assert.equal(result.serverAnswered, true);
      assert.deepEqual(result.otherAddress, alternate);
      assert.deepEqual(result.publicAddresses, [endpoint.localAddress]);
      assert.deepEqual(result.localAddresses, [endpoint.localAddress]);
      assert.equal(result.filteringSocket, "fresh");
      assert.equal(result.classification.behindNat, false);
      assert.equal(result.classification.hairpinning, undefined);
      const filteringII = result.tests.find((t) => t.test === "filteringII")!;
      assert.equal(filteringII.socket, "filtering");
      assert.deepEqual(filteringII.from, alternate);
      assert.deepEqual(filteringII.destination, relay.address);
      assert.ok(result.tests.every((t) => t.transmissions === 1), "nothing was retransmitted");
      assert.ok(result.durationMs < 500, `took ${result.durationMs} ms`);
      assert.equal(stun.stats.answered, 4);
      // The endpoint's STUN bytes are free again.
      endpoint.onRawPacket([0x00, 0x01], () => {})();
    });
  });
});

Deno.test("natcheck: a server without an alternate address leaves filtering undetermined, saying why", async () => {
  await withRelay({}, async (relay, stun) => {
    await withEndpoint(async (endpoint) => {
      const result = await checkNat(endpoint, { server: relay.address });
      assert.deepEqual(summary(result), {
        classic: "open",
        mapping: "endpoint-independent",
        filtering: "undetermined",
        tests: ["testI:answered"],
      });
      assert.equal(result.otherAddress, undefined);
      const filtering = result.classification.filtering;
      assert.ok(filtering.behavior === "undetermined");
      assert.match(filtering.reason, /the server has no alternate address/);
      assert.equal(stun.stats.answered, 1);
    });
  });
  await withRelay({ port: true }, async (relay) => {
    await withEndpoint(async (endpoint) => {
      const result = await checkNat(endpoint, { server: relay.address });
      // Only a second port: OTHER-ADDRESS shares the IP; filtering test III alone can run.
      assert.equal(result.otherAddress?.hostname, "127.0.0.1");
      assert.deepEqual(result.tests.map((t) => t.test), ["testI", "filteringIII", "testIII"]);
      const filtering = result.classification.filtering;
      assert.ok(filtering.behavior === "undetermined");
      assert.deepEqual(filtering.possible, ["endpoint-independent", "address-dependent"]);
    });
  });
});

Deno.test("natcheck: the second socket: skipped, or the caller's (closed after)", async () => {
  await withRelay({ ip: true, port: true }, async (relay) => {
    await withEndpoint(async (endpoint) => {
      const skipped = await checkNat(endpoint, { server: relay.address, filtering: "skip" });
      assert.equal(skipped.filteringSocket, "none");
      assert.deepEqual(skipped.tests.map((t) => t.test), ["testI", "testII"]);
      const filtering = skipped.classification.filtering;
      assert.ok(filtering.behavior === "undetermined");
      assert.match(filtering.reason, /^not tested: the check had no second socket/);

      const socket = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
      const given = await checkNat(endpoint, { server: relay.address, filtering: socket });
      assert.equal(given.filteringSocket, "given");
      assert.equal(given.classification.filtering.behavior, "endpoint-independent");
      assert.deepEqual(
        given.tests.find((t) => t.test === "filteringII")!.mapped,
        socket.localAddress,
      );
      assert.equal(socket.closed, true);
    });
  });
});

Deno.test("natcheck: the endpoint's STUN bytes taken, bad options and abort are NatCheckErrors", async () => {
  await withRelay({ ip: true, port: true }, async (relay) => {
    await withEndpoint(async (endpoint) => {
      const stun = StunServer.start({ endpoint });
      await assert.rejects(
        checkNat(endpoint, { server: relay.address }),
        (e: Error) => e instanceof NatCheckError && e.reason === "busy",
      );
      await stun.close();
      const running = checkNat(endpoint, { server: relay.address });
      await assert.rejects(
        checkNat(endpoint, { server: relay.address }),
        (e: Error) => e instanceof NatCheckError && e.reason === "busy",
        "one check at a time per endpoint",
      );
      await running;
      await assert.rejects(
        checkNat(endpoint, { server: { hostname: "::1", port: 3478 } }),
        (e: Error) =>
          e instanceof NatCheckError && e.reason === "bad-options" && /IPv6 server/.test(e.message),
      );
      await assert.rejects(
        checkNat(endpoint, { server: relay.address, timeoutMs: 0 }),
        (e: Error) => e instanceof NatCheckError && e.reason === "bad-options",
      );
    });
  });
  // Aborted while test I waits on a silent server: it ends at once.
  const silent = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
  try {
    await withEndpoint(async (endpoint) => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const started = performance.now();
      await assert.rejects(
        checkNat(endpoint, { server: silent.localAddress, signal: controller.signal }),
        (e: Error) => e instanceof NatCheckError && e.reason === "aborted",
      );
      assert.ok(performance.now() - started < 500);
    });
  } finally {
    await silent.close();
  }
});

Deno.test("natcheck: a silent server: test I is retransmitted on RFC 8489's doubling schedule until the limit", async () => {
  const silent = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
  const arrivals: number[] = [];
  const receiving = silent.receive((batch) => {
    for (let i = 0; i < batch.count; i++) arrivals.push(performance.now());
  });
  try {
    await withEndpoint(async (endpoint) => {
      const started = performance.now();
      const result = await checkNat(endpoint, {
        server: silent.localAddress,
        timeoutMs: 1_000,
        minRtoMs: 100,
      });
      const took = performance.now() - started;
      assert.equal(result.serverAnswered, false);
      assert.equal(result.classification.classic, "unknown");
      assert.equal(result.classification.behindNat, undefined);
      assert.deepEqual(result.tests.map((t) => [t.test, t.outcome, t.transmissions]), [
        ["testI", "no-answer", 3],
      ]);
      // Sent at 0, 200 and 600 ms (RTO 200 doubling; the next, at 1400, is past the limit).
      assert.equal(arrivals.length, 3);
      const gaps = arrivals.slice(1).map((t, i) => t - arrivals[i]);
      assert.ok(gaps[0] >= 190 && gaps[0] < 300, `first gap ${gaps[0]} ms`);
      assert.ok(gaps[1] >= 390 && gaps[1] < 500, `second gap ${gaps[1]} ms`);
      assert.ok(took >= 1_000 && took < 1_300, `gave up after ${took} ms`);
    });
  } finally {
    await silent.close();
    await receiving;
  }
});

/**
 * A hand-made RFC 5780 server on 127.0.0.1/127.0.0.2 that ignores the first transmission of
 * every transaction: the check must retransmit each test once and still classify.
 */
Deno.test("natcheck: lost first transmissions are retransmitted; Karn's rule leaves the default timeout", async () => {
  const port1 = freePort();
  let port2 = freePort();
  while (port2 === port1) port2 = freePort();
  const addresses = {
    primary: { hostname: "127.0.0.1", port: port1 },
    alternateIp: "127.0.0.2",
    alternatePort: port2,
  };
  const sockets = new Map<string, UdpSocket>();
  for (const hostname of ["127.0.0.1", "127.0.0.2"]) {
    for (const port of [port1, port2]) {
      sockets.set(`${hostname}:${port}`, UdpSocket.bind({ hostname, port }));
    }
  }
  const seen = new Set<string>();
  const loops = [...sockets].map(([key, socket]) =>
    socket.receive((batch) => {
      for (let i = 0; i < batch.count; i++) {
        const b = batch.buffer[i];
        const packet = batch.buffers[b].subarray(
          batch.offsets[i],
          batch.offsets[i] + batch.lengths[i],
        );
        const id = Array.from(packet.subarray(8, 20)).join(",");
        if (!seen.has(id)) {
          seen.add(id); // Lost.
          continue;
        }
        const from = decodeSockaddr(batch.peers[b]);
        const [hostname, port] = key.split(":");
        const reply = answerStun(packet, from, { hostname, port: Number(port) }, addresses);
        if (reply.kind !== "answer") continue;
        const out = sockets.get(formatAddress(reply.origin))!;
        out.sendTo(reply.bytes, out.sockaddrFor(from));
        out.flush();
      }
    })
  );
  try {
    await withEndpoint(async (endpoint) => {
      const result = await checkNat(endpoint, { server: addresses.primary, minRtoMs: 50 });
      assert.equal(result.classification.classic, "open");
      assert.equal(result.classification.filtering.behavior, "endpoint-independent");
      assert.deepEqual(result.tests.map((t) => t.transmissions), [2, 2, 2, 2]);
      // Test I answered its second transmission (at 100 ms: RTO 2 x 50); without an RTT the
      // later tests use RTO 100 ms too, so theirs came at about 100 ms.
      for (const test of result.tests) {
        assert.ok(
          test.elapsedMs! >= 95 && test.elapsedMs! < 250,
          `${test.test}: ${test.elapsedMs}`,
        );
      }
    });
  } finally {
    for (const socket of sockets.values()) await socket.close();
    await Promise.all(loops);
  }
});

Deno.test("natcheck: on a node's endpoint beside its live relay connection, STUN sees the address QAD reports", async () => {
  await withRelay({ ip: true, port: true }, async (relay, stun, org) => {
    const files = await org.issue("conn-1", "connector", ["web"]);
    const node = startNode(relay.address, {
      certificateFile: files.certPath,
      privateKeyFile: files.keyPath,
      caFile: org.caPath,
    }, "connector");
    try {
      await node.link.start();
      const result = await checkNat(node.endpoint, { server: relay.address });
      assert.equal(formatAddress(result.publicAddresses[0]), node.link.observed);
      assert.equal(result.classification.classic, "open");
      // The relay connection on the same socket carried on: it still answers requests.
      await node.link.register("web");
      assert.equal(relay.stats.nodesConnected, 1);
      assert.equal(relay.snapshot().services.web, 1);
      assert.equal(stun.stats.answered, 4);
    } finally {
      await stopNode(node);
    }
  });
});
