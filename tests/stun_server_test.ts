/**
 * The relay's STUN responder on loopback (127.0.0.1 and 127.0.0.2, two ports): each of its
 * four addresses answers each CHANGE-REQUEST from the address RFC 5780 says, with the right
 * RESPONSE-ORIGIN and OTHER-ADDRESS; no answer exceeds three times its request (on bytes);
 * per-source and global rate limits and the bounded source table, by counters; a flood of
 * malformed and unknown STUN is dropped and counted exactly while QUIC service goes on; and
 * a relay without the responder answers nothing.
 */
import assert from "node:assert/strict";
import { formatAddress, type SocketAddress } from "../lib/net/address.ts";
import type { NodeIdentity } from "../lib/node/configs.ts";
import { Relay } from "../lib/relay/relay.ts";
import { StunServer, StunServerError, type StunServerOptions } from "../lib/relay/stun_server.ts";
import {
  answerStun,
  bindingRequest,
  type DecodedStunMessage,
  decodeStunMessage,
  encodeStunMessage,
  getAttribute,
  METHOD_BINDING,
  SourceLimiter,
} from "../lib/stun/mod.ts";
import { waitFor } from "./support/bytes.ts";
import { datagramRoundTrips } from "./support/exchange.ts";
import { makeTestOrg, openSession, startNode, stopNode, type TestOrg } from "./support/nodes.ts";
import { rawMessage } from "./stun/build.ts";

/** A UDP client that collects what it receives. */
class UdpClient {
  readonly received: { data: Uint8Array; from: SocketAddress }[] = [];
  readonly #conn: Deno.DatagramConn;
  readonly #loop: Promise<void>;

  constructor(hostname = "127.0.0.1") {
    const conn = Deno.listenDatagram({ hostname, port: 0, transport: "udp" });
    this.#conn = conn;
    this.#loop = (async () => {
      try {
        for (;;) {
          const [data, from] = await conn.receive();
          const { hostname, port } = from as Deno.NetAddr;
          this.received.push({ data, from: { hostname, port } });
        }
      } catch {
        // Closed.
      }
    })();
  }

  get address(): SocketAddress {
    const { hostname, port } = this.#conn.addr as Deno.NetAddr;
    return { hostname, port };
  }

  async send(data: Uint8Array, to: SocketAddress): Promise<void> {
    await this.#conn.send(data, { transport: "udp", ...to });
  }

  async close(): Promise<void> {
    this.#conn.close();
    await this.#loop;
  }
}

/** A relay on 127.0.0.1 with its STUN responder; `alternates` adds 127.0.0.2 and a second port. */
async function withStunRelay(
  options: { alternates?: boolean; limits?: StunServerOptions["limits"]; stun?: boolean },
  body: (relay: Relay, stun: StunServer | undefined, org: TestOrg) => Promise<void>,
): Promise<void> {
  const org = await makeTestOrg("stun");
  const files = await org.issue("relay-1", "relay");
  const relay = Relay.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    certificateFile: files.certPath,
    privateKeyFile: files.keyPath,
    caFile: org.caPath,
  });
  let stun: StunServer | undefined;
  try {
    if (options.stun ?? true) {
      stun = StunServer.start({
        endpoint: relay.endpoint,
        ...(options.alternates ? { alternateIp: "127.0.0.2", alternatePort: freePort() } : {}),
        limits: options.limits,
      });
    }
    await body(relay, stun, org);
  } finally {
    await stun?.close();
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
      // Taken on 127.0.0.2: try another.
    }
  }
}

function request(
  options: { changeIp?: boolean; changePort?: boolean; fingerprint?: boolean } = {},
): { bytes: Uint8Array; id: Uint8Array } {
  const message = bindingRequest(options);
  return {
    bytes: encodeStunMessage(message, { fingerprint: options.fingerprint }),
    id: message.transactionId,
  };
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** Waits for the answer to transaction `id` and decodes it. */
async function answerTo(
  client: UdpClient,
  id: Uint8Array,
): Promise<{ message: DecodedStunMessage; from: SocketAddress; size: number }> {
  let found: { data: Uint8Array; from: SocketAddress } | undefined;
  await waitFor(
    () => {
      found = client.received.find((r) => same(r.data.subarray(8, 20), id));
      return found !== undefined;
    },
    "a STUN answer",
    2_000,
  );
  return { message: decodeStunMessage(found!.data), from: found!.from, size: found!.data.length };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("STUN: each address answers each CHANGE-REQUEST from where RFC 5780 says", async () => {
  await withStunRelay({ alternates: true }, async (relay, stun) => {
    const p1 = relay.address.port;
    const p2 = stun!.addresses.alternatePort!;
    const [a1, a2] = ["127.0.0.1", "127.0.0.2"];
    assert.deepEqual(stun!.listening.map(formatAddress), [
      `${a1}:${p1}`,
      `${a1}:${p2}`,
      `${a2}:${p1}`,
      `${a2}:${p2}`,
    ]);
    const client = new UdpClient();
    try {
      // [received on, change IP, change port] -> [answered from, OTHER-ADDRESS]
      const table: [string, boolean, boolean, string, string][] = [];
      const other = (ip: string) => (ip === a1 ? a2 : a1);
      const otherPort = (port: number) => (port === p1 ? p2 : p1);
      for (const ip of [a1, a2]) {
        for (const port of [p1, p2]) {
          for (
            const [changeIp, changePort] of [[false, false], [true, false], [false, true], [
              true,
              true,
            ]]
          ) {
            const from = `${changeIp ? other(ip) : ip}:${changePort ? otherPort(port) : port}`;
            table.push([
              `${ip}:${port}`,
              changeIp,
              changePort,
              from,
              `${other(ip)}:${otherPort(port)}`,
            ]);
          }
        }
      }
      for (const [on, changeIp, changePort, from, otherAddress] of table) {
        const { bytes, id } = request({ changeIp, changePort });
        const [hostname, port] = on.split(":");
        await client.send(bytes, { hostname, port: Number(port) });
        const answer = await answerTo(client, id);
        const label = `request to ${on}, change IP ${changeIp}, change port ${changePort}`;
        assert.equal(answer.message.stunClass, "success", label);
        assert.equal(answer.message.method, METHOD_BINDING);
        assert.equal(formatAddress(answer.from), from, label);
        assert.deepEqual(
          getAttribute(answer.message, "XOR-MAPPED-ADDRESS")?.address,
          client.address,
        );
        assert.equal(formatAddress(getAttribute(answer.message, "RESPONSE-ORIGIN")!.address), from);
        assert.equal(
          formatAddress(getAttribute(answer.message, "OTHER-ADDRESS")!.address),
          otherAddress,
        );
      }
      assert.equal(stun!.stats.answered, 16);
      assert.deepEqual(
        Object.values(stun!.stats.receivedOn),
        [4, 4, 4, 4],
        "each address received its four requests",
      );
    } finally {
      await client.close();
    }
  });
});

Deno.test("STUN: answers are at most 3x their request, measured on the bytes received", async () => {
  await withStunRelay({ alternates: true }, async (relay, stun) => {
    const client = new UdpClient();
    const to = relay.address;
    try {
      const bare = request();
      const changing = request({ changeIp: true, changePort: true });
      const fingerprinted = request({ fingerprint: true });
      const id = new Uint8Array(12).fill(9);
      const unknown = rawMessage([[0x7f01, new Uint8Array(0)]], { transactionId: id });
      const responsePort = rawMessage([[0x0027, new Uint8Array([0x12, 0x34, 0, 0])]], {
        transactionId: new Uint8Array(12).fill(10),
      });
      const cases: [string, Uint8Array, Uint8Array, number, string][] = [
        // name, request, transaction ID, exact answer size, class
        ["bare Binding request", bare.bytes, bare.id, 56, "success"],
        ["change IP and port", changing.bytes, changing.id, 56, "success"],
        ["with FINGERPRINT", fingerprinted.bytes, fingerprinted.id, 64, "success"],
        ["unknown required attribute: 420", unknown, id, 56, "error"],
        [
          "RESPONSE-PORT (not implemented): 420",
          responsePort,
          new Uint8Array(12).fill(10),
          56,
          "error",
        ],
      ];
      let sent = 0;
      for (const [name, bytes, transactionId, size, stunClass] of cases) {
        await client.send(bytes, to);
        const answer = await answerTo(client, transactionId);
        assert.equal(answer.size, size, name);
        assert.ok(answer.size <= 3 * bytes.length, `${name}: ${answer.size} > 3 x ${bytes.length}`);
        assert.equal(answer.message.stunClass, stunClass, name);
        sent += answer.size;
      }
      assert.equal(bare.bytes.length, 20);
      const error = decodeStunMessage(
        client.received.find((r) => same(r.data.subarray(8, 20), id))!.data,
      );
      assert.deepEqual(getAttribute(error, "UNKNOWN-ATTRIBUTES")?.types, [0x7f01]);
      assert.equal(getAttribute(error, "ERROR-CODE")?.code, 420);
      assert.equal(stun!.stats.bytesSent, sent);
      assert.equal(stun!.stats.answered, 3);
      assert.equal(stun!.stats.errorsAnswered, 2);
      assert.equal(stun!.stats.droppedOversize, 0);
    } finally {
      await client.close();
    }
  });
});

Deno.test("STUN responder: IPv6 answers drop optional attributes to stay within 3x", () => {
  const addresses = {
    primary: { hostname: "2001:db8::2", port: 3478 },
    alternateIp: "2001:db8::3",
    alternatePort: 3479,
  };
  const from = { hostname: "2001:db8:1::5", port: 40000 };
  const bare = encodeStunMessage(bindingRequest());
  const small = answerStun(bare, from, addresses.primary, addresses);
  assert.equal(small.kind, "answer");
  if (small.kind !== "answer") return;
  // 20 + XOR-MAPPED-ADDRESS (24) fits 60; OTHER-ADDRESS (24 more) would not.
  assert.equal(small.bytes.length, 44);
  assert.deepEqual(decodeStunMessage(small.bytes).attributes.map((a) => a.type), [
    "XOR-MAPPED-ADDRESS",
  ]);
  const padded = encodeStunMessage(bindingRequest({ extra: [{ type: "PADDING", length: 8 }] }), {
    fingerprint: true,
  });
  const full = answerStun(padded, from, addresses.primary, addresses);
  assert.equal(full.kind, "answer");
  if (full.kind !== "answer") return;
  assert.equal(padded.length, 40);
  assert.equal(full.bytes.length, 100);
  assert.ok(full.bytes.length <= 3 * padded.length);
  assert.deepEqual(decodeStunMessage(full.bytes).attributes.map((a) => a.type), [
    "XOR-MAPPED-ADDRESS",
    "RESPONSE-ORIGIN",
    "OTHER-ADDRESS",
    "FINGERPRINT",
  ]);
});

Deno.test("STUN: per-source-IP and global rate limits, and a bounded source table", async () => {
  await withStunRelay({
    limits: { perSourceRate: 0.01, perSourceBurst: 5, maxSources: 2, globalRate: 1000 },
  }, async (relay, stun) => {
    const first = new UdpClient("127.0.0.1");
    const secondPort = new UdpClient("127.0.0.1");
    const others = ["127.0.0.3", "127.0.0.4", "127.0.0.5"].map((ip) => new UdpClient(ip));
    try {
      for (let i = 0; i < 20; i++) await first.send(request().bytes, relay.address);
      await waitFor(() => stun!.stats.received === 20, "20 requests");
      await sleep(100);
      assert.equal(first.received.length, 5, "the burst, then nothing");
      assert.equal(stun!.stats.answered, 5);
      assert.equal(stun!.stats.droppedSourceLimited, 15);
      // Another port of the same IP shares the bucket.
      for (let i = 0; i < 3; i++) await secondPort.send(request().bytes, relay.address);
      await waitFor(() => stun!.stats.received === 23, "23 requests");
      await sleep(100);
      assert.equal(secondPort.received.length, 0);
      assert.equal(stun!.stats.droppedSourceLimited, 18);
      // Other IPs have their own buckets; the table holds two sources, evicting the oldest.
      for (const client of others) {
        await client.send(request().bytes, relay.address);
        await waitFor(
          () => client.received.length === 1,
          `an answer to ${client.address.hostname}`,
        );
      }
      assert.equal(stun!.trackedSources, 2);
      assert.equal(stun!.evictedSources, 2);
      assert.equal(stun!.stats.answered, 8);
    } finally {
      await Promise.all([first, secondPort, ...others].map((client) => client.close()));
    }
  });
  await withStunRelay({ limits: { globalRate: 4 } }, async (relay, stun) => {
    const clients = ["127.0.0.3", "127.0.0.4", "127.0.0.5"].map((ip) => new UdpClient(ip));
    try {
      for (const client of clients) {
        for (let i = 0; i < 2; i++) await client.send(request().bytes, relay.address);
      }
      await waitFor(() => stun!.stats.received === 6, "6 requests");
      await sleep(100);
      assert.equal(stun!.stats.answered, 4, "one second's worth of the global rate");
      assert.equal(stun!.stats.droppedGlobalLimited, 2);
      assert.equal(stun!.stats.droppedSourceLimited, 0);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});

/** Malformed and unknown STUN datagrams, each with the counter it must land in. */
function floodKinds(): { name: string; bytes: Uint8Array; counter: string }[] {
  const id = new Uint8Array(12).fill(3);
  const good = encodeStunMessage(bindingRequest({ transactionId: id }), { fingerprint: true });
  const badCookie = good.slice();
  badCookie[4] ^= 0xff;
  const badLength = good.slice();
  badLength[3] += 4;
  const badFingerprint = good.slice();
  badFingerprint[good.length - 1] ^= 1;
  const overflow = rawMessage([[0x8022, new Uint8Array(8)]]);
  overflow[23] = 200; // SOFTWARE claims 200 bytes, 8 follow.
  return [
    { name: "truncated", bytes: good.subarray(0, 12), counter: "malformed.truncated" },
    { name: "bad cookie", bytes: badCookie, counter: "malformed.bad-magic-cookie" },
    { name: "bad length", bytes: badLength, counter: "malformed.bad-length" },
    { name: "bad fingerprint", bytes: badFingerprint, counter: "malformed.bad-fingerprint" },
    { name: "attribute overflow", bytes: overflow, counter: "malformed.attribute-overflow" },
    {
      name: "response type 0x0101",
      bytes: rawMessage([], { type: 0x0101 }),
      counter: "droppedNotRequest",
    },
    { name: "indication", bytes: rawMessage([], { type: 0x0011 }), counter: "droppedNotRequest" },
    {
      name: "Allocate request (not Binding)",
      bytes: rawMessage([], { type: 0x0003 }),
      counter: "droppedUnknownMethod",
    },
  ];
}

Deno.test("STUN: a flood of malformed and unknown STUN is dropped and counted exactly; QUIC goes on", async () => {
  await withStunRelay({ alternates: true }, async (relay, stun, org) => {
    const kinds = floodKinds();
    const PER_KIND = 1_000;
    const client = new UdpClient();
    const expected: Record<string, number> = {};
    try {
      let sent = 0;
      const targets = stun!.listening;
      for (let round = 0; round < PER_KIND / 100; round++) {
        for (const kind of kinds) {
          for (let i = 0; i < 100; i++) {
            // Spread over the four addresses: the QUIC socket and the alternates alike.
            await client.send(kind.bytes, targets[(sent + i) % targets.length]);
          }
          sent += 100;
          expected[kind.counter] = (expected[kind.counter] ?? 0) + 100;
        }
        await waitFor(() => stun!.stats.received === sent, `${sent} datagrams counted`);
      }
      const s = stun!.stats;
      const counted: Record<string, number> = {
        droppedNotRequest: s.droppedNotRequest,
        droppedUnknownMethod: s.droppedUnknownMethod,
      };
      for (const [reason, n] of Object.entries(s.malformed)) counted[`malformed.${reason}`] = n!;
      assert.deepEqual(counted, expected);
      assert.equal(s.received, kinds.length * PER_KIND);
      assert.equal(s.droppedMalformed, 5 * PER_KIND);
      assert.equal(s.answered + s.errorsAnswered + s.bytesSent, 0, "nothing answered");
      assert.equal(s.droppedSourceLimited, 0, "drops spend no rate-limit tokens");
      assert.equal(client.received.length, 0);
      assert.deepEqual(Object.values(s.receivedOn), [2000, 2000, 2000, 2000]);

      // A good request is still answered, and the relay still carries a QUIC session.
      const good = request();
      await client.send(good.bytes, relay.address);
      assert.equal((await answerTo(client, good.id)).message.stunClass, "success");
      const identity = async (name: string, role: "agent" | "connector", services: string[]) => {
        const files = await org.issue(name, role, services);
        return {
          certificateFile: files.certPath,
          privateKeyFile: files.keyPath,
          caFile: org.caPath,
        } satisfies NodeIdentity;
      };
      const connector = startNode(
        relay.address,
        await identity("conn-1", "connector", ["web"]),
        "connector",
      );
      const agent = startNode(relay.address, await identity("alice", "agent", []), "agent", {
        relayOnly: true,
      });
      try {
        await connector.link.start();
        await agent.link.start();
        await connector.link.register("web");
        const session = await openSession(agent, "web");
        assert.equal(await datagramRoundTrips(session, 200, 1000), 200);
        assert.ok(relay.stats.datagramsForwarded >= 400);
      } finally {
        await stopNode(agent);
        await stopNode(connector);
      }
      assert.equal(stun!.stats.received, kinds.length * PER_KIND + 1, "QUIC never reached STUN");
    } finally {
      await client.close();
    }
  });
});

Deno.test("STUN: a relay without the responder answers nothing and counts the datagrams unclaimed", async () => {
  await withStunRelay({ stun: false }, async (relay) => {
    const client = new UdpClient();
    try {
      for (let i = 0; i < 5; i++) await client.send(request().bytes, relay.address);
      await waitFor(() => relay.endpoint.stats.rawUnclaimed === 5, "5 unclaimed datagrams");
      await sleep(300);
      assert.equal(client.received.length, 0);
    } finally {
      await client.close();
    }
  });
});

Deno.test("STUN server: refuses address sets that cannot work, with the reason", async () => {
  const org = await makeTestOrg("stun-bad");
  const files = await org.issue("relay-1", "relay");
  const relay = Relay.start({
    listen: { hostname: "0.0.0.0", port: 0 },
    certificateFile: files.certPath,
    privateKeyFile: files.keyPath,
    caFile: org.caPath,
  });
  try {
    assert.throws(
      () => StunServer.start({ endpoint: relay.endpoint, alternatePort: 40000 }),
      (error: Error) =>
        error instanceof StunServerError &&
        /^STUN: an alternate address or port needs a specific listening address, not 0\.0\.0\.0:\d+/
          .test(error.message),
    );
    // A wildcard without alternates works: XOR-MAPPED-ADDRESS only (no RESPONSE-ORIGIN).
    const stun = StunServer.start({ endpoint: relay.endpoint });
    const client = new UdpClient();
    try {
      const { bytes, id } = request();
      await client.send(bytes, { hostname: "127.0.0.1", port: relay.address.port });
      const answer = await answerTo(client, id);
      assert.deepEqual(answer.message.attributes.map((a) => a.type), ["XOR-MAPPED-ADDRESS"]);
      // The endpoint's STUN bytes are taken while it runs.
      assert.throws(() => StunServer.start({ endpoint: relay.endpoint }), /already has a handler/);
    } finally {
      await client.close();
      await stun.close();
    }
  } finally {
    await relay.close();
    await org.cleanup();
  }
});

Deno.test("STUN source limiter: refill by the clock, one bucket per IP whatever its text, bounded table", () => {
  const limiter = new SourceLimiter(
    { perSourceRate: 10, perSourceBurst: 3, maxSources: 2, globalRate: 100 },
    0,
  );
  const takes = (ip: string, n: number, at: number) =>
    Array.from({ length: n }, () => limiter.take(ip, at));
  assert.deepEqual(takes("198.18.10.2", 4, 0), ["allowed", "allowed", "allowed", "source-limited"]);
  // The v4-mapped text of the same IP shares its bucket; 100 ms at 10/s refill one token.
  assert.deepEqual(takes("::ffff:198.18.10.2", 1, 50), ["source-limited"]);
  assert.deepEqual(takes("::ffff:198.18.10.2", 2, 100), ["allowed", "source-limited"]);
  assert.equal(limiter.size, 1);
  limiter.take("198.18.11.2", 100);
  limiter.take("198.18.12.2", 100);
  assert.equal(limiter.size, 2);
  assert.equal(limiter.evictions, 1);
  // Forgotten, the first source comes back with a full bucket.
  assert.deepEqual(takes("198.18.10.2", 3, 100), ["allowed", "allowed", "allowed"]);
  assert.throws(() => new SourceLimiter({ perSourceRate: 0 }), /perSourceRate must be a positive/);
});
