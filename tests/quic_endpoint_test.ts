/**
 * The QUIC endpoint over real UDP on loopback: mutual-TLS handshakes with a CA
 * made at test time, DATAGRAMs and streams, IPv6 and dual-stack, idle timeout,
 * certificate and name refusals, and two endpoints in two processes.
 */
import assert from "node:assert/strict";
import { QuicConfig, type QuicConfigOptions } from "../lib/quic/config.ts";
import { type Connection } from "../lib/quic/connection.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import { ConnectionClosedError } from "../lib/quic/errors.ts";
import { makeTestPki, SERVER_NAME, type TestPki } from "./support/certificates.ts";
import { echo } from "./support/echo.ts";
import { waitFor } from "./support/bytes.ts";
import { datagramRoundTrips, streamRoundTrip } from "./support/exchange.ts";
import { spawnChild } from "../lib/netns/mod.ts";

const ALPN = "ztna-test";
const DATAGRAM_QUEUES = { receiveQueue: 4096, sendQueue: 4096 };

/** Server and client configurations for mutual TLS under `pki`. */
function configs(pki: TestPki, overrides: Partial<QuicConfigOptions> = {}) {
  const server = new QuicConfig({
    alpn: [ALPN],
    certificateChainFile: pki.server.certPath,
    privateKeyFile: pki.server.keyPath,
    caFile: pki.caPath,
    verifyPeer: true,
    datagrams: DATAGRAM_QUEUES,
    ...overrides,
  });
  const client = new QuicConfig({
    alpn: [ALPN],
    certificateChainFile: pki.client.certPath,
    privateKeyFile: pki.client.keyPath,
    caFile: pki.caPath,
    verifyPeer: true,
    datagrams: DATAGRAM_QUEUES,
    ...overrides,
  });
  return {
    serverConfig: server,
    clientConfig: client,
    free: () => (server.free(), client.free()),
  };
}

/** Connects the pair's client and waits until both sides completed the handshake. */
async function connectPair(
  ctx: { server: Endpoint; client: Endpoint; clientConfig: QuicConfig; accepted: Connection[] },
  peer = ctx.server.localAddress,
): Promise<Connection> {
  const connection = ctx.client.connect({
    peer,
    serverName: SERVER_NAME,
    config: ctx.clientConfig,
  });
  await connection.established;
  await waitFor(() => ctx.accepted.length === 1, "the server to accept the connection");
  return connection;
}

/** Runs `body` with an echo server on `serverHost` and a client endpoint on `clientHost`. */
async function withPair(
  options: { serverHost: string; clientHost: string; overrides?: Partial<QuicConfigOptions> },
  body: (
    ctx:
      & { server: Endpoint; client: Endpoint; pki: TestPki; accepted: Connection[] }
      & ReturnType<
        typeof configs
      >,
  ) => Promise<void>,
): Promise<void> {
  const pki = await makeTestPki("endpoint");
  const c = configs(pki, options.overrides);
  const accepted: Connection[] = [];
  const server = Endpoint.bind({
    address: { hostname: options.serverHost, port: 0 },
    server: {
      config: c.serverConfig,
      onConnection: (connection) => {
        accepted.push(connection);
        echo(connection);
      },
    },
  });
  const client = Endpoint.bind({ address: { hostname: options.clientHost, port: 0 } });
  try {
    await body({ server, client, pki, accepted, ...c });
  } finally {
    await client.close();
    await server.close();
    c.free();
    await pki.cleanup();
  }
}

Deno.test("mutual TLS handshake, 10,000 DATAGRAMs each way and a 10 MB stream", async () => {
  await withPair({ serverHost: "127.0.0.1", clientHost: "127.0.0.1" }, async (ctx) => {
    const connection = await connectPair(ctx);
    assert.equal(connection.alpn, ALPN);
    assert.ok(connection.peerCertificate && connection.peerCertificate.length > 100);
    assert.equal(ctx.accepted.length, 1);
    assert.ok(ctx.accepted[0].peerCertificate, "server sees the client certificate");
    assert.ok(ctx.server.stats.retries >= 1, "server validated the address with a retry");
    assert.equal(ctx.server.handshakesInProgress, 0, "a completed handshake no longer counts");
    assert.equal(ctx.server.handshakeSources, 0);

    const echoed = await datagramRoundTrips(connection, 10_000);
    assert.equal(echoed, 10_000);
    const clientStats = connection.stats();
    const serverStats = ctx.accepted[0].stats();
    assert.equal(serverStats.datagramsReceived, 10_000);
    assert.equal(serverStats.datagramsSent, 10_000);
    assert.equal(clientStats.datagramsSent, 10_000);
    assert.equal(clientStats.datagramsReceived, 10_000);

    const stream = await streamRoundTrip(connection, 10 * 1024 * 1024);
    assert.equal(stream.receivedLength, 10 * 1024 * 1024);
    assert.equal(stream.received, stream.sent);

    assert.equal(connection.isClosing, false);
    connection.close(0, "done");
    // Closing at once, freed only after draining.
    assert.deepEqual([connection.isClosing, connection.isClosed], [true, false]);
    const reason = await connection.closed;
    assert.deepEqual(reason, { by: "local", isApplication: true, code: 0, reason: "done" });
    assert.deepEqual([connection.isClosing, connection.isClosed], [true, true]);
    const serverSide = await ctx.accepted[0].closed;
    assert.equal(serverSide.by, "peer");
    assert.equal(serverSide.reason, "done");
  });
});

Deno.test("IPv6 loopback: handshake, DATAGRAMs and a stream", async () => {
  await withPair({ serverHost: "::1", clientHost: "::1" }, async (ctx) => {
    const connection = await connectPair(ctx);
    assert.equal(connection.pathStats()[0].peer.hostname, "::1");
    assert.equal(await datagramRoundTrips(connection, 500), 500);
    const stream = await streamRoundTrip(connection, 1 << 20);
    assert.equal(stream.received, stream.sent);
  });
});

Deno.test("dual-stack server on :: accepts an IPv4 client and reports its plain IPv4 address", async () => {
  await withPair({ serverHost: "::", clientHost: "127.0.0.1" }, async (ctx) => {
    const connection = await connectPair(ctx, {
      hostname: "127.0.0.1",
      port: ctx.server.localAddress.port,
    });
    assert.deepEqual(ctx.accepted[0].initialPeer, ctx.client.localAddress);
    assert.equal(await datagramRoundTrips(connection, 100), 100);
  });
});

Deno.test("idle timeout closes both sides", async () => {
  await withPair(
    { serverHost: "127.0.0.1", clientHost: "127.0.0.1", overrides: { idleTimeoutMs: 300 } },
    async (ctx) => {
      const connection = await connectPair(ctx);
      const started = performance.now();
      const [clientReason, serverReason] = await Promise.all([
        connection.closed,
        ctx.accepted[0].closed,
      ]);
      const elapsed = performance.now() - started;
      assert.equal(clientReason.by, "idle");
      assert.equal(serverReason.by, "idle");
      assert.ok(elapsed >= 250 && elapsed < 5_000, `closed after ${elapsed} ms`);
      assert.equal(ctx.client.connectionCount, 0);
      assert.equal(ctx.server.connectionCount, 0);
    },
  );
});

/** Connects with `clientConfig` and returns the handshake's rejection. */
async function handshakeError(
  ctx: { server: Endpoint; client: Endpoint },
  clientConfig: QuicConfig,
  serverName = SERVER_NAME,
): Promise<ConnectionClosedError> {
  const connection = ctx.client.connect({
    peer: ctx.server.localAddress,
    serverName,
    config: clientConfig,
  });
  const error = await connection.established.then(() => null, (e) => e);
  assert.ok(error instanceof ConnectionClosedError, `expected a refusal, got ${error}`);
  return error;
}

Deno.test("a server certificate from another CA is refused with a clear error", async () => {
  await withPair({ serverHost: "127.0.0.1", clientHost: "127.0.0.1" }, async (ctx) => {
    const otherPki = await makeTestPki("other");
    const config = new QuicConfig({
      alpn: [ALPN],
      caFile: otherPki.caPath,
      certificateChainFile: otherPki.client.certPath,
      privateKeyFile: otherPki.client.keyPath,
      verifyPeer: true,
    });
    try {
      const error = await handshakeError(ctx, config);
      assert.match(error.message, /^handshake failed: closed locally: TLS alert \d+ \(/);
      assert.equal(error.close.isApplication, false);
      assert.ok(error.close.code >= 0x100 && error.close.code <= 0x1ff, "a TLS alert");
      assert.equal(ctx.accepted.length, 0);
    } finally {
      config.free();
      await otherPki.cleanup();
    }
  });
});

Deno.test("a wrong server name is refused with a clear error", async () => {
  await withPair({ serverHost: "127.0.0.1", clientHost: "127.0.0.1" }, async (ctx) => {
    const error = await handshakeError(ctx, ctx.clientConfig, "not-the-server.test");
    assert.match(error.message, /handshake failed: closed locally: TLS alert/);
    assert.equal(ctx.accepted.length, 0);
  });
});

Deno.test("a client certificate from another CA is refused by the server", async () => {
  await withPair({ serverHost: "127.0.0.1", clientHost: "127.0.0.1" }, async (ctx) => {
    const otherPki = await makeTestPki("rogue");
    const config = new QuicConfig({
      alpn: [ALPN],
      caFile: ctx.pki.caPath,
      certificateChainFile: otherPki.client.certPath,
      privateKeyFile: otherPki.client.keyPath,
      verifyPeer: true,
    });
    try {
      // TLS 1.3: the client completes its side first; the server's refusal arrives as a close.
      const connection = ctx.client.connect({
        peer: ctx.server.localAddress,
        serverName: SERVER_NAME,
        config,
      });
      const reason = await connection.closed;
      assert.equal(reason.by, "peer");
      assert.equal(reason.isApplication, false);
      assert.ok(reason.code >= 0x100 && reason.code <= 0x1ff, `a TLS alert, got ${reason.code}`);
      assert.equal(ctx.accepted.length, 0, "the server never reports the rogue client");
      // The failed handshake's slot is given back when its connection ends.
      await waitFor(() => ctx.server.connectionCount === 0, "the server to free the connection");
      assert.equal(ctx.server.handshakesInProgress, 0);
      assert.equal(ctx.server.handshakeSources, 0);
      assert.equal(ctx.server.stats.handshakesTimedOut, 0);
    } finally {
      config.free();
      await otherPki.cleanup();
    }
  });
});

Deno.test("an ALPN the server does not speak is refused", async () => {
  await withPair({ serverHost: "127.0.0.1", clientHost: "127.0.0.1" }, async (ctx) => {
    const config = new QuicConfig({ alpn: ["something-else"], caFile: ctx.pki.caPath });
    try {
      const error = await handshakeError(ctx, config);
      assert.match(error.message, /TLS alert 120 \(no application protocol\)/);
    } finally {
      config.free();
    }
  });
});

Deno.test("two endpoints in two processes: 10,000 DATAGRAMs each way and a 10 MB stream", async () => {
  const pki = await makeTestPki("two-process");
  const child = spawnChild(Deno.execPath(), [
    "run",
    "--allow-all",
    new URL("./support/echo_server_main.ts", import.meta.url).pathname,
    "127.0.0.1",
    pki.server.certPath,
    pki.server.keyPath,
    pki.caPath,
    ALPN,
  ]);
  const c = configs(pki);
  const client = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  try {
    const ready = await child.nextLine();
    const port = Number(/^READY (\d+)$/.exec(ready)?.[1]);
    assert.ok(port > 0, `server said "${ready}"`);
    const connection = client.connect({
      peer: { hostname: "127.0.0.1", port },
      serverName: SERVER_NAME,
      config: c.clientConfig,
    });
    await connection.established;
    assert.equal(await datagramRoundTrips(connection, 10_000), 10_000);
    const stream = await streamRoundTrip(connection, 10 * 1024 * 1024);
    assert.equal(stream.received, stream.sent);
    connection.close(0, "done");
    await connection.closed;
    child.process.kill("SIGTERM");
    const serverStats = JSON.parse(await child.nextLine());
    assert.equal(serverStats.connectionsAccepted, 1);
    assert.equal((await child.stop()).code, 0);
  } finally {
    await child.stop();
    await client.close();
    c.free();
    await pki.cleanup();
  }
});

Deno.test("a client without a certificate is refused with TLS alert 116", async () => {
  await withPair({ serverHost: "127.0.0.1", clientHost: "127.0.0.1" }, async (ctx) => {
    const config = new QuicConfig({ alpn: [ALPN], caFile: ctx.pki.caPath });
    try {
      const connection = ctx.client.connect({
        peer: ctx.server.localAddress,
        serverName: SERVER_NAME,
        config,
      });
      const reason = await connection.closed;
      assert.deepEqual(reason, {
        by: "peer",
        isApplication: false,
        code: 0x100 + 116,
        reason: "client certificate required",
      });
      assert.equal(ctx.server.stats.clientCertificateMissing, 1);
      assert.equal(ctx.accepted.length, 0);
    } finally {
      config.free();
    }
  });
});

Deno.test("a slow reader's flow-control updates go out at once: no stall at the window edge", async () => {
  await withPair(
    {
      serverHost: "127.0.0.1",
      clientHost: "127.0.0.1",
      // A 32 KiB stream window and a 3 s idle timeout: a withheld window update stalls the
      // sender until the connection dies.
      overrides: { initialMaxStreamData: 32 * 1024, idleTimeoutMs: 3_000 },
    },
    async (ctx) => {
      const connection = await connectPair(ctx);
      const stream = connection.openStream();
      const data = new Uint8Array(1 << 20).map((_, i) => i % 251);
      const writing = stream.write(data, true);
      let received = 0;
      for (let chunk = await stream.read(); chunk; chunk = await stream.read()) {
        received += chunk.length;
        // Every read happens later, outside any packet processing.
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await writing;
      assert.equal(received, data.length);
      assert.equal(connection.isClosed, false);
    },
  );
});
