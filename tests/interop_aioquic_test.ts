/**
 * Interop with aioquic, a QUIC implementation we did not write (Python, not
 * libquiche), through tests/interop/aioquic_peer.py: our client against an
 * aioquic echo server, the aioquic client against our echo server, mutual TLS
 * both ways, refusals (wrong server name, missing client certificate), a Retry
 * from each side, and IPv6. aioquic comes from tests/interop/requirements.txt;
 * without it these tests fail (they never skip).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { QuicConfig } from "../lib/quic/config.ts";
import type { Connection } from "../lib/quic/connection.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import { describeClose } from "../lib/quic/errors.ts";
import type { SocketAddress } from "../lib/net/address.ts";
import { pseudoRandomBytes, sha256, waitFor } from "./support/bytes.ts";
import {
  type IdentityFiles,
  makeTestPki,
  SERVER_NAME,
  type TestPki,
} from "./support/certificates.ts";
import { echo } from "./support/echo.ts";
import { streamRoundTrip } from "./support/exchange.ts";

const ALPN = "ztna-interop";
const PEER_SCRIPT = new URL("./interop/aioquic_peer.py", import.meta.url).pathname;
/** aioquic echoes DATAGRAMs of at most 1158 bytes by default (see tests/interop/README.md). */
const DATAGRAM_SIZE = 1000;
const DATAGRAM_COUNT = 10;
/**
 * More than aioquic's 1 MiB and our 4 MiB per-stream flow-control windows, so
 * both sides must hand out MAX_STREAM_DATA credit for the echo to finish.
 */
const STREAM_BYTES = 5_000_000;
/** CRYPTO_ERROR carrying TLS alert 116 (certificate_required). */
const ALERT_CERTIFICATE_REQUIRED = 0x100 + 116;

// ---------------------------------------------------------------------------
// aioquic availability: a missing aioquic is a failure, never a skip.

let aioquicCheck: Promise<void> | undefined;

/** Throws, saying how to install it, unless `python3` can import aioquic. */
function requireAioquic(): Promise<void> {
  aioquicCheck ??= (async () => {
    const hint = "install it with `python3 -m pip install -r tests/interop/requirements.txt` " +
      "(CI installs it; these interop tests never skip)";
    let output: Deno.CommandOutput;
    try {
      output = await new Deno.Command("python3", {
        args: ["-c", "import aioquic; print(aioquic.__version__)"],
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (error) {
      throw new Error(`cannot run python3 (${error}); the aioquic interop tests need it: ${hint}`);
    }
    if (!output.success) {
      const detail = new TextDecoder().decode(output.stderr).trim().split("\n").at(-1);
      throw new Error(`python3 cannot import aioquic (${detail}): ${hint}`);
    }
  })();
  return aioquicCheck;
}

// ---------------------------------------------------------------------------
// The aioquic peer process.

/** A running aioquic_peer.py; stdout is read as lines, stderr is kept for diagnostics. */
interface Peer {
  /** The next stdout line; rejects on timeout or when the process exits first. */
  nextLine(timeoutMs?: number): Promise<string>;
  /** Everything the peer wrote to stderr so far. */
  stderr(): string;
  /** The exit status, within `timeoutMs`. */
  exited(timeoutMs?: number): Promise<Deno.CommandStatus>;
  /** SIGTERM (if still running), then the exit status; safe to call twice. */
  stop(): Promise<Deno.CommandStatus>;
}

function collect(stream: ReadableStream<Uint8Array>, sink: (text: string) => void): Promise<void> {
  return stream.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => sink(chunk) }),
  ).catch(() => {});
}

function spawnPeer(args: string[]): Peer {
  const process = new Deno.Command("python3", {
    args: [PEER_SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { PYTHONUNBUFFERED: "1" },
  }).spawn();
  let stdout = "";
  let stderr = "";
  let exited = false;
  const drained = Promise.all([
    collect(process.stdout, (text) => stdout += text),
    collect(process.stderr, (text) => stderr += text),
  ]);
  const status = process.status.then(async (s) => {
    exited = true;
    await drained;
    return s;
  });
  const peer: Peer = {
    async nextLine(timeoutMs = 15_000) {
      const deadline = performance.now() + timeoutMs;
      while (!stdout.includes("\n")) {
        if (exited) {
          await drained;
          if (stdout.includes("\n")) break;
          throw new Error(`aioquic peer exited without an output line; stderr:\n${stderr}`);
        }
        if (performance.now() > deadline) {
          throw new Error(
            `aioquic peer: no output line within ${timeoutMs} ms; stderr:\n${stderr}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const at = stdout.indexOf("\n");
      const line = stdout.slice(0, at);
      stdout = stdout.slice(at + 1);
      return line;
    },
    stderr: () => stderr,
    async exited(timeoutMs = 10_000) {
      await waitFor(() => exited, "the aioquic peer to exit", timeoutMs);
      return await status;
    },
    async stop() {
      if (!exited) {
        try {
          process.kill("SIGTERM");
        } catch {
          // Exited between the check and the signal.
        }
      }
      return await status;
    },
  };
  return peer;
}

/** Runs `body` with an aioquic echo server on `host`; reaps it and shows its log if `body` fails. */
async function withAioquicServer(
  options: { host: string; pki: TestPki; extraArgs?: string[] },
  body: (server: { peer: Peer; address: SocketAddress }) => Promise<void>,
): Promise<void> {
  const listen = options.host.includes(":") ? `[${options.host}]:0` : `${options.host}:0`;
  const peer = spawnPeer([
    "server",
    "--listen",
    listen,
    "--cert",
    options.pki.server.certPath,
    "--key",
    options.pki.server.keyPath,
    "--alpn",
    ALPN,
    ...(options.extraArgs ?? []),
  ]);
  try {
    const ready = await peer.nextLine();
    const port = Number(/^READY (\d+)$/.exec(ready)?.[1]);
    assert.ok(port > 0, `aioquic server said "${ready}"`);
    await body({ peer, address: { hostname: options.host, port } });
    const status = await peer.stop();
    assert.equal(status.code, 0, `aioquic server exit status; stderr:\n${peer.stderr()}`);
  } catch (error) {
    console.error(`--- aioquic server stderr ---\n${peer.stderr()}--- end ---`);
    throw error;
  } finally {
    await peer.stop();
  }
}

/** The JSON line of an aioquic client run. */
interface ClientResult {
  ok: boolean;
  error?: string;
  alpn?: string;
  datagrams_echoed?: number;
  datagram_resends?: number;
  stream_bytes?: number;
  stream_sha256?: string;
}

/** Runs the aioquic client to completion; returns its JSON line, exit code and stderr. */
async function runAioquicClient(options: {
  server: SocketAddress;
  pki: TestPki;
  serverName?: string;
  identity?: IdentityFiles;
}): Promise<{ result: ClientResult; code: number; stderr: string }> {
  const { hostname, port } = options.server;
  const connect = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  const peer = spawnPeer([
    "client",
    "--connect",
    connect,
    "--ca",
    options.pki.caPath,
    "--server-name",
    options.serverName ?? SERVER_NAME,
    "--alpn",
    ALPN,
    ...(options.identity
      ? ["--cert", options.identity.certPath, "--key", options.identity.keyPath]
      : []),
    "--datagram-count",
    String(DATAGRAM_COUNT),
    "--datagram-size",
    String(DATAGRAM_SIZE),
    "--stream-bytes",
    String(STREAM_BYTES),
    "--timeout",
    "15",
  ]);
  try {
    const line = await peer.nextLine(30_000);
    const status = await peer.exited();
    let result: ClientResult;
    try {
      result = JSON.parse(line);
    } catch {
      throw new Error(`aioquic client printed "${line}"; stderr:\n${peer.stderr()}`);
    }
    return { result, code: status.code, stderr: peer.stderr() };
  } finally {
    await peer.stop();
  }
}

/** Recomputes aioquic_peer.py's `stream_payload(n)`: sha256("ztna-interop-stream" + u64be(i)), i = 0, 1, ... */
function aioquicStreamPayload(n: number): Uint8Array {
  const prefix = new TextEncoder().encode("ztna-interop-stream");
  const block = new Uint8Array(prefix.length + 8);
  block.set(prefix);
  const view = new DataView(block.buffer);
  const out = new Uint8Array(n);
  for (let counter = 0, offset = 0; offset < n; counter++, offset += 32) {
    view.setBigUint64(prefix.length, BigInt(counter));
    const digest = createHash("sha256").update(block).digest();
    out.set(digest.subarray(0, Math.min(32, n - offset)), offset);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Our side.

/** Rejects with `what` if `promise` takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A client configuration trusting the test CA, presenting `identity` if given. */
function clientConfig(pki: TestPki, identity?: IdentityFiles): QuicConfig {
  return new QuicConfig({
    alpn: [ALPN],
    caFile: pki.caPath,
    certificateChainFile: identity?.certPath,
    privateKeyFile: identity?.keyPath,
    verifyPeer: true,
    idleTimeoutMs: 10_000,
  });
}

/**
 * Sends `count` distinct DATAGRAMs of `size` bytes and waits for each to come back
 * byte for byte; a missing echo is resent every 250 ms (DATAGRAMs are unreliable).
 * Returns how many distinct, intact echoes arrived and how many resends it took.
 */
async function datagramEchoes(
  connection: Connection,
  count: number,
  size: number,
): Promise<{ echoed: number; resends: number; corrupt: number }> {
  const payloads = Array.from({ length: count }, (_, i) => {
    const payload = pseudoRandomBytes(size, 1000 + i);
    new DataView(payload.buffer).setUint32(0, i);
    return payload;
  });
  const digests = payloads.map(sha256);
  const echoed = new Set<number>();
  let corrupt = 0;
  const stop = connection.onDatagram((data) => {
    const index = data.length >= 4 ? new DataView(data.buffer, data.byteOffset).getUint32(0) : -1;
    if (index >= 0 && index < count && sha256(data) === digests[index]) echoed.add(index);
    else corrupt++;
  });
  let resends = 0;
  const deadline = performance.now() + 10_000;
  for (let round = 0; echoed.size < count && performance.now() < deadline; round++) {
    for (let i = 0; i < count; i++) {
      if (echoed.has(i)) continue;
      assert.ok(connection.sendDatagram(payloads[i]), `DATAGRAM ${i} was not queued`);
      if (round > 0) resends++;
    }
    await waitFor(() => echoed.size === count, "DATAGRAM echoes", 250).catch(() => {});
  }
  stop();
  return { echoed: echoed.size, resends, corrupt };
}

/** Our client's full exchange with an aioquic echo server at `address`. */
async function exchangeWithAioquicServer(
  pki: TestPki,
  address: SocketAddress,
  identity?: IdentityFiles,
): Promise<void> {
  const config = clientConfig(pki, identity);
  const client = Endpoint.bind({
    address: { hostname: address.hostname.includes(":") ? "::1" : "127.0.0.1", port: 0 },
  });
  try {
    const connection = client.connect({ peer: address, serverName: SERVER_NAME, config });
    await within(connection.established, 10_000, "the handshake with aioquic");
    assert.equal(connection.alpn, ALPN);
    assert.ok(
      connection.peerCertificate && connection.peerCertificate.length > 100,
      "aioquic's server certificate",
    );
    assert.ok(connection.maxDatagramSize >= DATAGRAM_SIZE, "aioquic accepts our DATAGRAMs");

    const datagrams = await datagramEchoes(connection, DATAGRAM_COUNT, DATAGRAM_SIZE);
    assert.deepEqual(
      { echoed: datagrams.echoed, corrupt: datagrams.corrupt },
      { echoed: DATAGRAM_COUNT, corrupt: 0 },
    );
    const stats = connection.stats();
    assert.ok(stats.datagramsSent >= DATAGRAM_COUNT);
    assert.ok(stats.datagramsReceived >= DATAGRAM_COUNT);

    const stream = await within(
      streamRoundTrip(connection, STREAM_BYTES),
      20_000,
      "the 5 MB stream echo",
    );
    assert.equal(stream.receivedLength, STREAM_BYTES);
    assert.equal(stream.received, stream.sent);

    connection.close(0, "done");
    const reason = await within(connection.closed, 10_000, "the connection to close");
    assert.deepEqual(reason, { by: "local", isApplication: true, code: 0, reason: "done" });
  } finally {
    await client.close();
    config.free();
  }
}

/**
 * Runs `body` with our echo server on `host` (server identity, Retry on by default).
 * `accepted` collects the connections it reported.
 */
async function withOurServer(
  options: { host: string; pki: TestPki; verifyPeer: boolean },
  body: (ctx: { server: Endpoint; accepted: Connection[] }) => Promise<void>,
): Promise<void> {
  const config = new QuicConfig({
    alpn: [ALPN],
    certificateChainFile: options.pki.server.certPath,
    privateKeyFile: options.pki.server.keyPath,
    caFile: options.pki.caPath,
    verifyPeer: options.verifyPeer,
    idleTimeoutMs: 10_000,
  });
  const accepted: Connection[] = [];
  const server = Endpoint.bind({
    address: { hostname: options.host, port: 0 },
    server: {
      config,
      onConnection: (connection) => {
        accepted.push(connection);
        echo(connection);
      },
    },
  });
  try {
    await body({ server, accepted });
  } finally {
    await server.close();
    config.free();
  }
}

/** Runs the aioquic client against our server and checks its full, successful exchange. */
async function aioquicClientSucceeds(
  pki: TestPki,
  ctx: { server: Endpoint; accepted: Connection[] },
  identity?: IdentityFiles,
): Promise<void> {
  const run = await runAioquicClient({ server: ctx.server.localAddress, pki, identity });
  const why = `aioquic client: ${JSON.stringify(run.result)}; stderr:\n${run.stderr}`;
  assert.equal(run.result.ok, true, why);
  assert.equal(run.code, 0, why);
  assert.equal(run.result.alpn, ALPN);
  assert.equal(run.result.datagrams_echoed, DATAGRAM_COUNT);
  assert.equal(run.result.stream_bytes, STREAM_BYTES);
  assert.equal(run.result.stream_sha256, sha256(aioquicStreamPayload(STREAM_BYTES)));

  assert.ok(ctx.server.stats.retries >= 1, "aioquic followed our Retry");
  assert.equal(ctx.server.stats.connectionsAccepted, 1);
  assert.equal(ctx.accepted.length, 1);
  const connection = ctx.accepted[0];
  assert.equal(connection.alpn, ALPN);
  assert.equal(connection.peerCertificate !== null, identity !== undefined, "client certificate");
  const reason = await within(connection.closed, 10_000, "aioquic's close to reach our server");
  assert.equal(reason.by, "peer", describeClose(reason));
  assert.equal(reason.code, 0, describeClose(reason));
  const stats = connection.stats();
  assert.ok(stats.datagramsReceived >= DATAGRAM_COUNT, `${stats.datagramsReceived} received`);
  assert.equal(stats.datagramsSent, stats.datagramsReceived, "every DATAGRAM echoed");
  assert.equal(ctx.server.connectionCount, 0);
}

/** Makes a test PKI for one test and removes it afterwards. */
async function withPki(name: string, body: (pki: TestPki) => Promise<void>): Promise<void> {
  await requireAioquic();
  const pki = await makeTestPki(name);
  try {
    await body(pki);
  } finally {
    await pki.cleanup();
  }
}

// ---------------------------------------------------------------------------
// Our client → aioquic server.

Deno.test("our client → aioquic server: ALPN, 10 DATAGRAMs and a 5 MB stream echoed", async () => {
  await withPki("aioquic-server", async (pki) => {
    await withAioquicServer({ host: "127.0.0.1", pki }, async ({ address }) => {
      await exchangeWithAioquicServer(pki, address);
    });
  });
});

Deno.test("our client → aioquic server with mutual TLS: the server verifies our client certificate", async () => {
  await withPki("aioquic-server-mtls", async (pki) => {
    await withAioquicServer(
      { host: "127.0.0.1", pki, extraArgs: ["--ca", pki.caPath, "--require-client-cert"] },
      async ({ peer, address }) => {
        await exchangeWithAioquicServer(pki, address, pki.client);
        assert.match(peer.stderr(), /handshake completed .* client_cert=CN=client\.test/);
      },
    );
  });
});

Deno.test("our client without a certificate is refused by an aioquic server requiring one (alert 116)", async () => {
  await withPki("aioquic-server-nocert", async (pki) => {
    await withAioquicServer(
      { host: "127.0.0.1", pki, extraArgs: ["--ca", pki.caPath, "--require-client-cert"] },
      async ({ peer, address }) => {
        const config = clientConfig(pki);
        const client = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
        try {
          const connection = client.connect({ peer: address, serverName: SERVER_NAME, config });
          const reason = await within(connection.closed, 10_000, "aioquic's refusal");
          assert.equal(reason.by, "peer", describeClose(reason));
          assert.equal(reason.isApplication, false);
          assert.equal(reason.code, ALERT_CERTIFICATE_REQUIRED, describeClose(reason));
          assert.doesNotMatch(peer.stderr(), /handshake completed/);
        } finally {
          await client.close();
          config.free();
        }
      },
    );
  });
});

Deno.test("our client → aioquic server sending a Retry", async () => {
  await withPki("aioquic-server-retry", async (pki) => {
    await withAioquicServer(
      { host: "127.0.0.1", pki, extraArgs: ["--retry"] },
      async ({ address }) => {
        await exchangeWithAioquicServer(pki, address);
      },
    );
  });
});

// ---------------------------------------------------------------------------
// aioquic client → our server.

Deno.test("aioquic client → our server with mutual TLS: 10 DATAGRAMs and a 5 MB stream echoed", async () => {
  await withPki("our-server-mtls", async (pki) => {
    await withOurServer({ host: "127.0.0.1", pki, verifyPeer: true }, async (ctx) => {
      await aioquicClientSucceeds(pki, ctx, pki.client);
    });
  });
});

Deno.test("aioquic client without a certificate → our server with verifyPeer false", async () => {
  await withPki("our-server-tls", async (pki) => {
    await withOurServer({ host: "127.0.0.1", pki, verifyPeer: false }, async (ctx) => {
      await aioquicClientSucceeds(pki, ctx);
    });
  });
});

Deno.test("aioquic client with a wrong server name fails and our server reports no connection", async () => {
  await withPki("our-server-wrong-name", async (pki) => {
    await withOurServer({ host: "127.0.0.1", pki, verifyPeer: true }, async (ctx) => {
      const run = await runAioquicClient({
        server: ctx.server.localAddress,
        pki,
        identity: pki.client,
        serverName: "wrong.test",
      });
      const why = `aioquic client: ${JSON.stringify(run.result)}; stderr:\n${run.stderr}`;
      assert.equal(run.result.ok, false, why);
      assert.equal(run.code, 1, why);
      assert.match(
        run.result.error ?? "",
        /^handshake failed: connection closed by local endpoint/,
      );
      assert.match(run.result.error ?? "", /TLS alert 42 bad_certificate/);
      assert.match(run.result.error ?? "", /wrong\.test/);
      // The client's CONNECTION_CLOSE ends our half-open connection without a report.
      await waitFor(() => ctx.server.connectionCount === 0, "our server to drop the connection");
      assert.equal(ctx.accepted.length, 0);
      assert.equal(ctx.server.stats.connectionsAccepted, 0);
    });
  });
});

Deno.test("aioquic client without a certificate is refused by our mutual-TLS server (alert 116)", async () => {
  await withPki("our-server-nocert", async (pki) => {
    await withOurServer({ host: "127.0.0.1", pki, verifyPeer: true }, async (ctx) => {
      const run = await runAioquicClient({ server: ctx.server.localAddress, pki });
      const why = `aioquic client: ${JSON.stringify(run.result)}; stderr:\n${run.stderr}`;
      assert.equal(run.result.ok, false, why);
      assert.equal(run.code, 1, why);
      assert.match(run.result.error ?? "", /^handshake failed: connection closed by peer/, why);
      assert.match(run.result.error ?? "", /TLS alert 116 certificate_required/, why);
      assert.match(run.result.error ?? "", /client certificate required/, why);
      assert.equal(ctx.server.stats.clientCertificateMissing, 1);
      assert.equal(ctx.server.stats.connectionsAccepted, 0);
      assert.equal(ctx.accepted.length, 0);
    });
  });
});

// ---------------------------------------------------------------------------
// IPv6.

Deno.test("IPv6 [::1]: our client → aioquic server", async () => {
  await withPki("aioquic-server-v6", async (pki) => {
    await withAioquicServer({ host: "::1", pki }, async ({ address }) => {
      await exchangeWithAioquicServer(pki, address);
    });
  });
});

Deno.test("IPv6 [::1]: aioquic client → our server with mutual TLS", async () => {
  await withPki("our-server-v6", async (pki) => {
    await withOurServer({ host: "::1", pki, verifyPeer: true }, async (ctx) => {
      await aioquicClientSucceeds(pki, ctx, pki.client);
      assert.equal(ctx.accepted[0].initialPeer.hostname, "::1");
    });
  });
});
