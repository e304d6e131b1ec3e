/**
 * A server endpoint under handshake floods, on loopback with real quiche
 * clients: a replayed retry token makes at most one connection; handshakes in
 * progress are capped in all and per source address; a handshake that does not
 * complete is freed after `handshakeTimeoutMs`; `acceptVirtualOnly` ignores
 * real addresses; a virtual peer hosts one server connection at a time; and a
 * server in its own process retains no memory for 5,000 fresh-token handshakes
 * from one address.
 *
 * The attacker is a UDP proxy in front of the server: a real quiche client
 * connects through it, the proxy passes the client's first flight and the
 * server's Retry, and keeps the client's next flight (its ClientHello again,
 * in one or two Initials carrying the token) without forwarding it; the test
 * then sends those Initials itself, as often as it likes, from the proxy's
 * address (the one the tokens are bound to).
 */
import assert from "node:assert/strict";
import { configureSync, type LogRecord, resetSync } from "@logtape/logtape";
import {
  encodeSockaddr,
  sameSockaddr,
  type SocketAddress,
  virtualAddress,
} from "../lib/net/address.ts";
import { UdpSocket } from "../lib/net/udp_socket.ts";
import { QuicConfig } from "../lib/quic/config.ts";
import type { Connection } from "../lib/quic/connection.ts";
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MAX_HANDSHAKES,
  DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
  Endpoint,
  type EndpointStats,
  type ServerOptions,
  type VirtualPeer,
} from "../lib/quic/endpoint.ts";
import { HandshakeLimits, sourceKey } from "../lib/quic/handshake_limits.ts";
import { ThrottledReport } from "../lib/quic/throttled_report.ts";
import { type Child, denoCommand, spawnChild } from "../lib/netns/mod.ts";
import { waitFor } from "./support/bytes.ts";
import { makeTestPki, SERVER_NAME, type TestPki } from "./support/certificates.ts";
import { echo } from "./support/echo.ts";

const ALPN = "ztna-test";
const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/** Server and client configurations for mutual TLS under `pki`. */
function configs(pki: TestPki) {
  const server = new QuicConfig({
    alpn: [ALPN],
    certificateChainFile: pki.server.certPath,
    privateKeyFile: pki.server.keyPath,
    caFile: pki.caPath,
    idleTimeoutMs: 30_000,
  });
  const client = new QuicConfig({
    alpn: [ALPN],
    certificateChainFile: pki.client.certPath,
    privateKeyFile: pki.client.keyPath,
    caFile: pki.caPath,
    idleTimeoutMs: 30_000,
  });
  return { server, client, free: () => (server.free(), client.free()) };
}

/** The counters that count received packets: each packet is in exactly one. */
function packetsCounted(stats: EndpointStats): number {
  return stats.routedToConnections + stats.unknownConnectionDropped + stats.malformedDropped +
    stats.rawDelivered + stats.rawUnclaimed + stats.versionNegotiations + stats.retries +
    stats.invalidTokens + stats.handshakesRefused + stats.nonVirtualDropped +
    stats.duplicateVirtualDropped + stats.acceptFailures;
}

/** Waits until the server counted every packet it received on its socket, and checks that. */
async function allCounted(server: Endpoint, sent: number): Promise<void> {
  await waitFor(
    () => server.socketStats.packetsReceived >= sent,
    `the server to receive ${sent} packets`,
    5_000,
  );
  assert.equal(server.socketStats.packetsReceived, sent, "no packet lost on loopback");
  assert.equal(packetsCounted(server.stats), sent, JSON.stringify(server.stats));
}

/** A QUIC v1 long header's type (0 Initial, 3 Retry), DCID, and an Initial's token. */
function longHeader(packet: Uint8Array): { type: number; dcid: Uint8Array; token: Uint8Array } {
  const type = (packet[0] >> 4) & 3;
  let i = 5;
  const dcid = packet.subarray(i + 1, i + 1 + packet[i]);
  i += 1 + packet[i];
  i += 1 + packet[i]; // SCID
  if (type !== 0) return { type, dcid, token: new Uint8Array(0) };
  const width = 1 << (packet[i] >> 6);
  let length = packet[i] & 0x3f;
  for (let k = 1; k < width; k++) length = length * 256 + packet[i + k];
  i += width;
  return { type, dcid, token: packet.subarray(i, i + length) };
}

/** Offset of a long-header packet's DCID. */
const DCID_OFFSET = 6;

/** A copy of `initial` sent to another, random, DCID of the same length (its token unchanged). */
function withOtherDcid(initial: Uint8Array): Uint8Array {
  const copy = initial.slice();
  const length = copy[5];
  copy.set(crypto.getRandomValues(new Uint8Array(length)), DCID_OFFSET);
  return copy;
}

/**
 * The attacker: a UDP socket in front of `server` that passes a client's
 * token-less Initials and the server's Retries, keeps each connection's flight
 * of token-carrying Initials (not forwarded) and drops everything else.
 */
class InitialCollector {
  readonly socket: UdpSocket;
  /** Packets the server sent to this address that were not Retries. */
  fromServer = 0;
  readonly #server: Uint8Array;
  /** Token-carrying flights by DCID, while capturing. */
  readonly #flights = new Map<string, Uint8Array[]>();
  #capturing = false;
  #client: Uint8Array | null = null;
  readonly #done: Promise<void>;
  #sent = 0;

  constructor(host: string, server: SocketAddress) {
    this.socket = UdpSocket.bind({ hostname: host, port: 0 });
    this.#server = this.socket.sockaddrFor(server);
    this.#done = this.socket.receive((batch) => {
      for (let i = 0; i < batch.count; i++) {
        const peer = batch.peers[batch.buffer[i]];
        const start = batch.offsets[i];
        const packet = batch.buffers[batch.buffer[i]].subarray(start, start + batch.lengths[i]);
        this.#onPacket(packet, peer);
      }
      this.socket.flush();
    });
  }

  #onPacket(packet: Uint8Array, peer: Uint8Array): void {
    const isLong = (packet[0] & 0x80) !== 0;
    if (sameSockaddr(peer, this.#server)) {
      if (isLong && longHeader(packet).type === 3 && this.#client) {
        this.socket.sendTo(packet, this.#client);
      } else {
        this.fromServer++;
      }
      return;
    }
    this.#client = peer.slice(0, this.#server.length);
    if (!isLong) return;
    const { type, dcid, token } = longHeader(packet);
    if (type !== 0) return;
    if (token.length === 0) {
      this.send([packet]);
      return;
    }
    if (!this.#capturing) return;
    const key = dcid.join(",");
    const flight = this.#flights.get(key) ?? [];
    flight.push(packet.slice());
    this.#flights.set(key, flight);
  }

  /** The address the tokens it captures are bound to. */
  get address(): SocketAddress {
    return this.socket.localAddress;
  }

  /** Packets this collector sent to the server so far. */
  get sent(): number {
    return this.#sent;
  }

  /**
   * The token-carrying first flights (a ClientHello may take two datagrams) of
   * `count` fresh quiche client connections, each after its own Retry; the
   * clients are freed before this returns. Every flight has the same length.
   */
  async capture(count: number, clientConfig: QuicConfig): Promise<Uint8Array[][]> {
    this.#flights.clear();
    this.#capturing = true;
    const client = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
    try {
      for (let i = 0; i < count; i++) {
        client.connect({ peer: this.address, serverName: SERVER_NAME, config: clientConfig });
      }
      await waitFor(() => this.#flights.size >= count, `${count} token-carrying flights`, 5_000);
      await tick(30); // the rest of each flight
    } finally {
      this.#capturing = false;
      await client.close();
    }
    const flights = [...this.#flights.values()];
    assert.equal(flights.length, count);
    for (const flight of flights) assert.equal(flight.length, flights[0].length, "flight lengths");
    return flights;
  }

  /** Sends `packets` to the server from this collector's address. */
  send(packets: Uint8Array[]): void {
    for (const packet of packets) {
      if (!this.socket.sendTo(packet, this.#server)) {
        this.socket.flush();
        if (!this.socket.sendTo(packet, this.#server)) {
          throw new Error("the collector's send queue is full; send fewer at once");
        }
      }
      this.#sent++;
    }
    this.socket.flush();
  }

  async close(): Promise<void> {
    await this.socket.close();
    await this.#done;
  }
}

/** A server endpoint on 127.0.0.1 with mutual TLS, echoing, with `options`. */
async function withServer(
  options: Partial<Omit<ServerOptions, "config" | "onConnection">>,
  body: (ctx: {
    server: Endpoint;
    accepted: Connection[];
    clientConfig: QuicConfig;
    collector: (host?: string) => InitialCollector;
  }) => Promise<void>,
): Promise<void> {
  const pki = await makeTestPki("handshake-limits");
  const c = configs(pki);
  const accepted: Connection[] = [];
  const server = Endpoint.bind({
    address: { hostname: "127.0.0.1", port: 0 },
    server: {
      config: c.server,
      onConnection: (connection) => (accepted.push(connection), echo(connection)),
      ...options,
    },
  });
  const collectors: InitialCollector[] = [];
  const collector = (host = "127.0.0.1") => {
    const made = new InitialCollector(host, server.localAddress);
    collectors.push(made);
    return made;
  };
  try {
    await body({ server, accepted, clientConfig: c.client, collector });
  } finally {
    for (const made of collectors) await made.close();
    await server.close();
    c.free();
    await pki.cleanup();
  }
}

/**
 * A real client on `host` that connects to `server` and waits (5 s at most) for
 * both sides' handshake; returns its endpoint, to close.
 */
async function legitimateHandshake(
  server: Endpoint,
  accepted: Connection[],
  clientConfig: QuicConfig,
  host: string,
): Promise<Endpoint> {
  const timeoutMs = 5_000;
  const client = Endpoint.bind({ address: { hostname: host, port: 0 } });
  const before = accepted.length;
  const connection = client.connect({
    peer: server.localAddress,
    serverName: SERVER_NAME,
    config: clientConfig,
  });
  const timer = setTimeout(() => connection.close(1, "test timeout"), timeoutMs);
  try {
    await connection.established;
    await waitFor(() => accepted.length === before + 1, "the server to accept", timeoutMs);
  } catch (error) {
    await client.close();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return client;
}

/** Records the endpoint's warnings while `body` runs. */
async function withWarnings(body: (warnings: LogRecord[]) => Promise<void>): Promise<void> {
  const warnings: LogRecord[] = [];
  configureSync({
    sinks: { memory: (record: LogRecord) => warnings.push(record) },
    loggers: [
      { category: ["ztna", "quic"], lowestLevel: "warning", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
    reset: true,
  });
  try {
    await body(warnings);
  } finally {
    resetSync();
  }
}

Deno.test("defaults: 1,000 handshakes in progress, 32 per address, 5 s to complete", () => {
  assert.equal(DEFAULT_MAX_HANDSHAKES, 1_000);
  assert.equal(DEFAULT_MAX_HANDSHAKES_PER_ADDRESS, 32);
  assert.equal(DEFAULT_HANDSHAKE_TIMEOUT_MS, 5_000);
});

Deno.test("bind refuses limits that are not positive", () => {
  const config = new QuicConfig({ alpn: [ALPN] });
  const bind = (options: Partial<ServerOptions>) =>
    Endpoint.bind({
      address: { hostname: "127.0.0.1", port: 0 },
      server: { config, onConnection: () => {}, ...options },
    });
  assert.throws(() => bind({ maxHandshakes: 0 }), /maxHandshakes must be a positive integer/);
  assert.throws(() => bind({ maxHandshakesPerAddress: 1.5 }), /maxHandshakesPerAddress/);
  assert.throws(
    () => bind({ handshakeTimeoutMs: 0 }),
    /handshakeTimeoutMs must be a positive number/,
  );
  assert.throws(() => bind({ handshakeTimeoutMs: NaN }), /handshakeTimeoutMs/);
  config.free();
});

Deno.test("sourceKey: the IP without the port; IPv4 plain or v4-mapped alike; IPv6 by /64", () => {
  const v4 = (hostname: string, port: number, family: 4 | 6 = 4) =>
    sourceKey(encodeSockaddr({ hostname, port }, family));
  assert.equal(v4("192.0.2.1", 1), v4("192.0.2.1", 65_535));
  assert.equal(v4("192.0.2.1", 1), v4("192.0.2.1", 2, 6));
  assert.notEqual(v4("192.0.2.1", 1), v4("192.0.2.2", 1));
  assert.notEqual(v4("0.0.0.7", 1), v4("0.0.0.9", 1), "each virtual peer is its own source");
  const v6 = (hostname: string) => sourceKey(encodeSockaddr({ hostname, port: 443 }, 6));
  assert.equal(v6("2001:db8:1:2::1"), v6("2001:db8:1:2:ffff:ffff:ffff:ffff"));
  assert.notEqual(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
  assert.notEqual(v6("::ffff:0:0"), v6("::"), "v4-mapped 0.0.0.0 is not the IPv6 /64 ::");
});

Deno.test("HandshakeLimits: refuses past either cap, frees on delete, keeps no empty source", () => {
  assert.throws(() => new HandshakeLimits(0, 1), RangeError);
  assert.throws(() => new HandshakeLimits(1, 0), RangeError);
  const limits = new HandshakeLimits<number>(5, 2);
  limits.add(1, "a");
  limits.add(2, "a");
  assert.equal(limits.refusal("a"), "per-address");
  assert.throws(() => limits.add(3, "a"), /per-address limit/);
  limits.add(3, "b");
  limits.add(4, "c");
  limits.add(5, "d");
  assert.equal(limits.refusal("e"), "total");
  assert.equal(limits.size, 5);
  assert.equal(limits.sources, 4);
  assert.equal(limits.delete(5), true);
  assert.equal(limits.delete(5), false);
  assert.equal(limits.sources, 3, "a source with no handshake left is forgotten");
  assert.equal(limits.refusal("e"), null);
  for (const item of [1, 2, 3, 4]) limits.delete(item);
  assert.equal(limits.size, 0);
  assert.equal(limits.sources, 0);
});

Deno.test("ThrottledReport: the first event at once, then one report per interval with the count", () => {
  let now = 0;
  const reports: [number, string][] = [];
  const report = new ThrottledReport<string>(60_000, (n, d) => reports.push([n, d]), () => now);
  report.note("a");
  assert.deepEqual(reports, [[1, "a"]]);
  for (now = 1_000; now < 60_000; now += 1_000) report.note(`t${now}`);
  assert.equal(reports.length, 1, "nothing more within the minute");
  now = 60_000;
  report.note("b");
  assert.deepEqual(reports[1], [60, "b"], "59 held back + this one");
  report.flush();
  assert.equal(reports.length, 2, "nothing pending");
  now = 61_000;
  report.note("c");
  report.note("d");
  assert.equal(reports.length, 2);
  report.flush();
  assert.deepEqual(reports[2], [2, "d"]);
});

Deno.test("a replayed retry token makes at most one connection; to other DCIDs it is invalid", async () => {
  await withServer({ handshakeTimeoutMs: 400 }, async ({ server, clientConfig, collector }) => {
    const attacker = collector();
    const [flight] = await attacker.capture(1, clientConfig);
    const mintedAt = performance.now();
    const k = flight.length;
    assert.equal(server.stats.retries, k, "each token-less datagram got a Retry");
    assert.equal(server.connectionCount, 0, "capturing made no connection");

    // The flight 50 times as sent: its first datagram makes the connection, the rest reach it.
    for (let i = 0; i < 50; i++) attacker.send(flight);
    await allCounted(server, attacker.sent);
    assert.equal(server.connectionCount, 1);
    assert.equal(server.handshakesInProgress, 1);
    assert.equal(server.stats.routedToConnections, 50 * k);
    assert.equal(server.stats.invalidTokens, 0);

    // The same token to 200 other DCIDs: each is an invalid token, nothing is made.
    for (let round = 0; round < 4; round++) {
      attacker.send(Array.from({ length: 50 }, () => withOtherDcid(flight[round % k])));
      await allCounted(server, attacker.sent);
    }
    assert.equal(server.stats.invalidTokens, 200);
    assert.equal(server.connectionCount, 1);
    assert.equal(server.stats.routedToConnections, 50 * k);

    // From another address, to the bound DCID, it reaches the same connection.
    const elsewhere = collector();
    elsewhere.send([flight[0]]);
    await allCounted(server, attacker.sent + elsewhere.sent);
    assert.equal(server.stats.routedToConnections, 50 * k + 1);
    assert.equal(server.connectionCount, 1);

    // Once that connection is gone (its handshake timed out), the token is still
    // bound to its address: from another port it is invalid.
    await waitFor(() => server.connectionCount === 0, "the half-open connection to time out");
    assert.equal(server.stats.handshakesTimedOut, 1);
    elsewhere.send([flight[0]]);
    await waitFor(() => server.stats.invalidTokens === 201, "the replay from elsewhere");
    // From its own address, within its lifetime, it makes one connection again:
    // at most one live connection per token.
    attacker.send(flight);
    attacker.send(flight);
    await waitFor(
      () => server.stats.routedToConnections === 52 * k + 1,
      "the replay to be routed",
    );
    assert.equal(server.connectionCount, 1);
    await waitFor(() => server.connectionCount === 0, "the second half-open one to time out");
    assert.equal(server.stats.handshakesTimedOut, 2);

    // After its 3 s lifetime, the token is refused even from its own address.
    const wait = mintedAt + 3_100 - performance.now();
    if (wait > 0) await tick(wait);
    attacker.send([flight[0]]);
    await waitFor(() => server.stats.invalidTokens === 202, "the stale replay");
    assert.equal(server.connectionCount, 0);
    await allCounted(server, attacker.sent + elsewhere.sent);
    assert.equal(server.stats.connectionsAccepted, 0);
  });
});

Deno.test("per-address cap: 10 fresh-token handshakes from one address, 4 admitted, 6 refused, another address unaffected", async () => {
  await withWarnings(async (warnings) => {
    let k = 0;
    await withServer(
      { maxHandshakes: 100, maxHandshakesPerAddress: 4, handshakeTimeoutMs: 10_000 },
      async ({ server, accepted, clientConfig, collector }) => {
        const attacker = collector();
        const flights = await attacker.capture(10, clientConfig);
        k = flights[0].length;
        attacker.send(flights.flat());
        await allCounted(server, attacker.sent);
        assert.equal(server.stats.retries, 10 * k);
        assert.equal(server.stats.invalidTokens, 0, "each token is good for its own DCID");
        assert.equal(server.connectionCount, 4);
        assert.equal(server.handshakesInProgress, 4);
        assert.equal(server.handshakeSources, 1);
        assert.equal(server.stats.handshakesRefused, 6 * k, "every datagram of 6 flights");
        assert.equal(server.stats.routedToConnections, 4 * k);
        assert.equal(warnings.length, 1, "the first refusal is logged at once");
        assert.equal(warnings[0].level, "warning");
        assert.equal(warnings[0].properties.count, 1);
        assert.equal(warnings[0].properties.refusal, "per-address");

        // A client at another address completes its handshake meanwhile.
        const client = await legitimateHandshake(server, accepted, clientConfig, "127.0.0.2");
        try {
          assert.equal(server.stats.connectionsAccepted, 1);
          assert.equal(server.handshakesInProgress, 4, "a completed handshake is not counted");
          assert.equal(server.handshakeSources, 1);
          // Sent again: the 4 admitted reach their connections, the 6 others are refused again.
          const routed = server.stats.routedToConnections;
          attacker.send(flights.flat());
          await waitFor(() => server.stats.handshakesRefused === 12 * k, "the second refusals");
          await waitFor(() => server.stats.routedToConnections === routed + 4 * k, "the routing");
          assert.equal(server.connectionCount, 5);
          assert.equal(warnings.length, 1, "no second line within the minute");
        } finally {
          await client.close();
        }
      },
    );
    assert.equal(warnings.length, 2, "closing the endpoint reports what was held back");
    assert.equal(warnings[1].properties.count, 12 * k - 1);
    assert.equal(warnings[1].properties.total, 12 * k);
  });
});

Deno.test("global cap: 8 handshakes from two addresses, 6 admitted; a third address gets in once they time out", async () => {
  await withServer(
    { maxHandshakes: 6, maxHandshakesPerAddress: 4, handshakeTimeoutMs: 600 },
    async ({ server, accepted, clientConfig, collector }) => {
      const first = collector("127.0.0.2");
      const second = collector("127.0.0.3");
      const flights = [
        await first.capture(4, clientConfig),
        await second.capture(4, clientConfig),
      ];
      const k = flights[0][0].length;
      first.send(flights[0].flat());
      second.send(flights[1].flat());
      await allCounted(server, first.sent + second.sent);
      assert.equal(server.connectionCount, 6);
      assert.equal(server.handshakesInProgress, 6);
      assert.equal(server.handshakeSources, 2);
      assert.equal(server.stats.handshakesRefused, 2 * k, "the 2 flights over 6");

      // A real client at a third address: refused while the cap is full, then its
      // retransmitted Initial gets in after the half-open ones are freed.
      const started = performance.now();
      const client = await legitimateHandshake(server, accepted, clientConfig, "127.0.0.4");
      const took = performance.now() - started;
      try {
        assert.ok(server.stats.handshakesRefused > 2 * k, "the client was refused at first");
        assert.equal(server.stats.handshakesTimedOut, 6);
        assert.ok(took >= 500, `the client got in after ${took.toFixed(0)} ms, not before`);
        assert.equal(server.stats.connectionsAccepted, 1);
        assert.equal(server.connectionCount, 1);
        assert.equal(server.handshakesInProgress, 0);
        assert.equal(server.handshakeSources, 0, "no source is remembered without a handshake");
      } finally {
        await client.close();
      }
    },
  );
});

Deno.test("handshake timeout: a client that stops after its first flight is freed at once; an established one stays", async () => {
  await withServer(
    { handshakeTimeoutMs: 300 },
    async ({ server, accepted, clientConfig, collector }) => {
      const attacker = collector();
      const [flight] = await attacker.capture(1, clientConfig);
      attacker.send(flight);
      await waitFor(() => server.connectionCount === 1, "the half-open connection");
      const started = performance.now();
      await waitFor(() => attacker.fromServer > 0, "the server's first flight");
      // A live client is past its handshake and is not subject to the timeout.
      const client = await legitimateHandshake(server, accepted, clientConfig, "127.0.0.2");
      try {
        await waitFor(() => server.stats.handshakesTimedOut === 1, "the timeout", 3_000);
        const took = performance.now() - started;
        assert.ok(took >= 200 && took < 2_000, `freed after ${took.toFixed(0)} ms`);
        assert.equal(server.connectionCount, 1, "the half-open one is gone at once");
        assert.equal(server.handshakesInProgress, 0);
        await tick(600);
        assert.equal(server.stats.handshakesTimedOut, 1);
        assert.equal(accepted[0].isClosed, false, "the established connection stays");
        assert.equal(server.connectionCount, 1);
      } finally {
        await client.close();
      }
    },
  );
});

/**
 * A virtual link between `server` (peer 7) and a client endpoint (peer 9):
 * packets are handed over in a later task; `dropToClient` drops the server's.
 */
function virtualLink(server: Endpoint, client: Endpoint) {
  const state = { toServer: 0, dropToClient: false, initials: new Map<string, number>() };
  const peers: { server?: VirtualPeer; client?: VirtualPeer } = {};
  peers.server = server.attachVirtualPeer(virtualAddress(7), (packet) => {
    if (state.dropToClient) return;
    const copy = packet.slice();
    setTimeout(() => peers.client?.receive(copy), 0);
  });
  peers.client = client.attachVirtualPeer(virtualAddress(9), (packet) => {
    if ((packet[0] & 0x80) && longHeader(packet).type === 0) {
      const key = longHeader(packet).dcid.join(",");
      state.initials.set(key, (state.initials.get(key) ?? 0) + 1);
    }
    const copy = packet.slice();
    setTimeout(() => {
      state.toServer++;
      peers.server?.receive(copy);
    }, 0);
  });
  return {
    state,
    clientPeer: peers.client.address,
    detach: () => (peers.server?.detach(), peers.client?.detach()),
  };
}

Deno.test("acceptVirtualOnly: a direct client gets nothing back, not even a Retry; a virtual peer's session is accepted", async () => {
  await withServer(
    { acceptVirtualOnly: true },
    async ({ server, accepted, clientConfig }) => {
      const direct = Endpoint.bind({ address: { hostname: "127.0.0.2", port: 0 } });
      const attacker = UdpSocket.bind({ hostname: "127.0.0.3", port: 0 });
      const link = virtualLink(server, direct);
      try {
        direct.connect({
          peer: server.localAddress,
          serverName: SERVER_NAME,
          config: clientConfig,
        });
        // An unknown version would be answered with version negotiation, elsewhere.
        // Its header: long, version 0x1a2a3a4a, 8-byte DCID and SCID, empty token.
        const other = new Uint8Array(1200);
        const cid = new Uint8Array(8).fill(7);
        other.set([0xc0, 0x1a, 0x2a, 0x3a, 0x4a, cid.length]);
        other.set(cid, 6);
        other[14] = cid.length;
        other.set(cid, 15);
        attacker.sendTo(other, attacker.sockaddrFor(server.localAddress));
        attacker.flush();
        await waitFor(() => server.stats.nonVirtualDropped >= 2, "the direct Initials");
        await tick(50); // the rest of the client's flight
        assert.ok(server.socketStats.packetsReceived >= 2);
        assert.equal(server.connectionCount, 0);
        assert.equal(server.stats.retries, 0);
        assert.equal(server.stats.versionNegotiations, 0);
        assert.equal(server.socketStats.packetsSent, 0, "the server sent nothing at all");
        assert.equal(packetsCounted(server.stats), server.socketStats.packetsReceived);
        assert.equal(server.stats.nonVirtualDropped, server.socketStats.packetsReceived);

        // The same client endpoint's session through the virtual peer is accepted.
        const session = direct.connect({
          peer: link.clientPeer,
          serverName: SERVER_NAME,
          config: clientConfig,
        });
        await session.established;
        await waitFor(() => accepted.length === 1, "the server to accept the session");
        assert.deepEqual(accepted[0].initialPeer, virtualAddress(7));

        // The endpoint's own client connections over UDP are unaffected (a connector's relay link).
        const pki = await makeTestPki("virtual-only-upstream");
        const c = configs(pki);
        const upstream = Endpoint.bind({
          address: { hostname: "127.0.0.4", port: 0 },
          server: { config: c.server, onConnection: () => {} },
        });
        try {
          const out = server.connect({
            peer: upstream.localAddress,
            serverName: SERVER_NAME,
            config: c.client,
          });
          await out.established;
          // The unknown-version packet above is one a normal server answers.
          attacker.sendTo(other, attacker.sockaddrFor(upstream.localAddress));
          attacker.flush();
          await waitFor(() => upstream.stats.versionNegotiations === 1, "version negotiation");
          await waitFor(() => upstream.stats.connectionsAccepted === 1, "the upstream to accept");
        } finally {
          await upstream.close();
          c.free();
          await pki.cleanup();
        }
      } finally {
        link.detach();
        await attacker.close();
        await direct.close();
      }
    },
  );
});

Deno.test("one server connection per virtual peer; the client's repeated Initials reach its own", async () => {
  await withServer({}, async ({ server, accepted, clientConfig }) => {
    const client = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
    const link = virtualLink(server, client);
    try {
      // Hold back the server's answers, so the client sends its Initial again to the
      // DCID it chose: that is routed to the connection its first Initial made.
      link.state.dropToClient = true;
      const first = client.connect({
        peer: link.clientPeer,
        serverName: SERVER_NAME,
        config: clientConfig,
      });
      await waitFor(
        () => [...link.state.initials.values()].some((n) => n >= 2),
        "the client to send its Initial again",
        5_000,
      );
      await waitFor(() => link.state.toServer === server.stats.routedToConnections, "routing");
      assert.equal(server.stats.duplicateVirtualDropped, 0);
      assert.equal(server.connectionCount, 1);
      link.state.dropToClient = false;
      await first.established;
      await waitFor(() => accepted.length === 1, "the server to accept");

      // A second connection at the same virtual peer is dropped while the first lives.
      const second = client.connect({
        peer: link.clientPeer,
        serverName: SERVER_NAME,
        config: clientConfig,
      });
      await waitFor(() => server.stats.duplicateVirtualDropped >= 1, "the duplicate to be dropped");
      assert.equal(server.connectionCount, 1);
      assert.equal(server.handshakesInProgress, 0);
      // Once the first is finished, the second's retransmitted Initial is accepted.
      first.close(0, "done");
      await accepted[0].closed;
      await second.established;
      await waitFor(() => accepted.length === 2, "the second connection");
      assert.equal(server.connectionCount, 1);
      assert.equal(server.socketStats.packetsReceived, 0, "everything came through the link");
      assert.equal(packetsCounted(server.stats), link.state.toServer);
    } finally {
      link.detach();
      await client.close();
    }
  });
});

/** What the flood target reports about itself. */
interface TargetStatus {
  /** Resident memory after a full garbage collection: what the endpoint retains. */
  rss: number;
  connections: number;
  inProgress: number;
  sources: number;
  received: number;
  stats: EndpointStats;
}

/**
 * With `deno run`, this file is a server endpoint alone in its process, so its
 * memory can be measured without the test's clients: `CERT KEY CA OPTIONS_JSON`
 * prints `READY <port>`, `WARN <properties>` per warning, and a JSON status line
 * on SIGUSR2 and when it stops on SIGTERM. Started with `--expose-gc`, it
 * collects garbage before measuring.
 */
function serveFloodTarget([certificateChainFile, privateKeyFile, caFile, options]: string[]) {
  configureSync({
    sinks: {
      stdout: (record: LogRecord) => console.log(`WARN ${JSON.stringify(record.properties)}`),
    },
    loggers: [
      { category: ["ztna", "quic"], lowestLevel: "warning", sinks: ["stdout"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  const config = new QuicConfig({
    alpn: [ALPN],
    certificateChainFile,
    privateKeyFile,
    caFile,
    idleTimeoutMs: 30_000,
  });
  const endpoint = Endpoint.bind({
    address: { hostname: "127.0.0.1", port: 0 },
    server: { config, onConnection: () => {}, ...JSON.parse(options) },
  });
  const gc = (globalThis as { gc?: () => void }).gc;
  const status = () => {
    gc?.();
    const report: TargetStatus = {
      rss: Deno.memoryUsage().rss,
      connections: endpoint.connectionCount,
      inProgress: endpoint.handshakesInProgress,
      sources: endpoint.handshakeSources,
      received: endpoint.socketStats.packetsReceived,
      stats: endpoint.stats,
    };
    console.log(JSON.stringify(report));
  };
  Deno.addSignalListener("SIGUSR2", status);
  Deno.addSignalListener("SIGTERM", async () => {
    await endpoint.close();
    config.free();
    status();
    Deno.exit(0);
  });
  console.log(`READY ${endpoint.localAddress.port}`);
}

if (import.meta.main) serveFloodTarget(Deno.args);

/** The flood target's status (asked with SIGUSR2), collecting the warnings printed before it. */
async function targetStatus(child: Child, warnings: Record<string, unknown>[], ask = true) {
  if (ask) child.process.kill("SIGUSR2");
  for (;;) {
    const line = await child.nextLine(5_000);
    if (line.startsWith("WARN ")) warnings.push(JSON.parse(line.slice(5)));
    else return JSON.parse(line) as TargetStatus;
  }
}

Deno.test("5,000 fresh-token flights and 5,000 replays from one address: 32 handshakes at a time, memory flat", async () => {
  const pki = await makeTestPki("flood");
  const c = configs(pki);
  const command = denoCommand(new URL(import.meta.url), [
    pki.server.certPath,
    pki.server.keyPath,
    pki.caPath,
    "{}", // the defaults
  ]);
  const child = spawnChild(command[0], [
    command[1],
    "--v8-flags=--expose-gc",
    ...command.slice(2),
  ]);
  const warnings: Record<string, unknown>[] = [];
  let attacker: InitialCollector | undefined;
  try {
    const port = Number(/^READY (\d+)$/.exec(await child.nextLine())?.[1]);
    assert.ok(port > 0, "the target is ready");
    attacker = new InitialCollector("127.0.0.1", { hostname: "127.0.0.1", port });
    const collector = attacker;
    let k = 0;
    const counted = async (): Promise<TargetStatus> => {
      const deadline = performance.now() + 5_000;
      for (;;) {
        const status = await targetStatus(child, warnings);
        if (status.received >= collector.sent || performance.now() > deadline) return status;
        await tick(5);
      }
    };
    const flood = async (batches: number) => {
      for (let i = 0; i < batches; i++) {
        const flights = await collector.capture(100, c.client);
        k = flights[0].length;
        collector.send(flights.flat());
        await counted();
        collector.send(flights.map((flight) => withOtherDcid(flight[0])));
        const status = await counted();
        assert.equal(status.received, collector.sent, "no packet lost on loopback");
        assert.equal(packetsCounted(status.stats), status.received);
        assert.ok(status.inProgress <= 32, `${status.inProgress} handshakes in progress`);
      }
    };
    await flood(5); // warm-up: allocator pools, JIT, TLS contexts
    const before = await targetStatus(child, warnings);
    await flood(50);
    const after = await targetStatus(child, warnings);
    const mib = (bytes: number) => (bytes / (1 << 20)).toFixed(1);
    const growthMiB = (after.rss - before.rss) / (1 << 20);
    const stats = after.stats;
    console.log(
      `server RSS after GC ${mib(before.rss)} → ${mib(after.rss)} MiB (${growthMiB.toFixed(1)}); ` +
        `over 5,000 ` +
        `fresh-token flights and 5,000 replays; ${after.connections} connections; ` +
        JSON.stringify(stats),
    );
    assert.equal(stats.invalidTokens, 5_500, "every replay to another DCID is invalid");
    assert.ok(after.connections <= 32, `${after.connections} connections`);
    assert.equal(after.connections, after.inProgress, "every connection is half-open");
    assert.ok(after.sources <= 1);
    // Every fresh flight was admitted (still in progress, or timed out) or refused whole.
    assert.equal(stats.handshakesRefused % k, 0);
    assert.equal(stats.handshakesRefused / k + stats.handshakesTimedOut + after.connections, 5_500);
    assert.equal(stats.connectionsAccepted, 0);
    // 5,000 half-open connections would retain about 190 MiB (some 39 KiB each).
    assert.ok(growthMiB < 8, `RSS grew by ${growthMiB.toFixed(1)} MiB`);
    assert.equal(warnings.length, 1, "one warning line in under a minute");

    child.process.kill("SIGTERM");
    const last = await targetStatus(child, warnings, false);
    assert.equal(warnings.length, 2, "and the rest when the endpoint closes");
    const logged = warnings.reduce((n, w) => n + Number(w.count), 0);
    assert.equal(logged, last.stats.handshakesRefused);
    assert.equal(warnings[1].total, last.stats.handshakesRefused);
  } finally {
    await attacker?.close();
    await child.stop();
    c.free();
    await pki.cleanup();
  }
});
