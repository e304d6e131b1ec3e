/**
 * The `ztna` executable as an operator runs it: real processes (`deno run
 * main.ts`), their exit statuses, stdout and stderr; `ztna probe quic` against
 * QUIC endpoints served by this test process.
 */
import assert from "node:assert/strict";
import { BOUND_QUICHE_VERSION } from "../ffi/quiche.ts";
import { formatAddress } from "../lib/net/address.ts";
import { QuicConfig } from "../lib/quic/config.ts";
import type { Connection } from "../lib/quic/connection.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import type { CloseReason } from "../lib/quic/errors.ts";
import { VERSION } from "../lib/version.ts";
import { makeTestPki, SERVER_NAME, type TestPki } from "./support/certificates.ts";
import { assertExit, type ExecResult, REPO, ztna as runZtna } from "./support/cli.ts";

/** Runs `ztna args` in the repository to completion (killed after 30 s). */
function ztna(args: string[], env: Record<string, string> = {}): Promise<ExecResult> {
  return runZtna(args, { cwd: REPO, env });
}

interface Server {
  pki: TestPki;
  endpoint: Endpoint;
  /** `HOST:PORT` of the server. */
  target: string;
  accepted: Connection[];
}

/** Runs `body` with a QUIC server (ALPN "ztna") under a test PKI, closed afterwards. */
async function withServer(
  options: { host?: string; requireClientCertificate?: boolean },
  body: (server: Server) => Promise<void>,
): Promise<void> {
  const pki = await makeTestPki("cli");
  const config = new QuicConfig({
    alpn: ["ztna"],
    certificateChainFile: pki.server.certPath,
    privateKeyFile: pki.server.keyPath,
    caFile: pki.caPath,
    verifyPeer: options.requireClientCertificate ?? false,
  });
  const accepted: Connection[] = [];
  const endpoint = Endpoint.bind({
    address: { hostname: options.host ?? "127.0.0.1", port: 0 },
    server: { config, onConnection: (connection) => accepted.push(connection) },
  });
  try {
    await body({ pki, endpoint, target: formatAddress(endpoint.localAddress), accepted });
  } finally {
    await endpoint.close();
    config.free();
    await pki.cleanup();
  }
}

/** `probe quic` arguments for `server` (server name and CA of its PKI). */
function probeArgs(server: Server, ...extra: string[]): string[] {
  return [
    "probe",
    "quic",
    server.target,
    "--server-name",
    SERVER_NAME,
    "--ca",
    server.pki.caPath,
    ...extra,
  ];
}

/** Waits for the server side of the probe's connection to close and returns why. */
async function serverSideClose(server: Server): Promise<CloseReason> {
  assert.equal(server.accepted.length, 1, "the server accepted the probe's connection");
  return await server.accepted[0].closed;
}

Deno.test("--help lists the commands on stdout", async () => {
  for (const flag of ["--help", "-h"]) {
    const run = await ztna([flag]);
    assertExit(run, 0);
    assert.match(run.stdout, /^Usage: ztna /);
    assert.match(run.stdout, /^ {2}probe {2}/m);
    assert.match(run.stdout, /--log-level/);
    assert.match(run.stdout, /--log-format/);
    assert.equal(run.stderr, "");
  }
});

Deno.test("no command prints the usage on stderr, exit 2", async () => {
  const run = await ztna([]);
  assertExit(run, 2);
  assert.equal(run.stdout, "");
  assert.match(run.stderr, /Usage: ztna /);
});

Deno.test("--version prints ztna's and libquiche's versions", async () => {
  const run = await ztna(["--version"]);
  assertExit(run, 0);
  const lines = run.stdout.trimEnd().split("\n");
  assert.equal(lines[0], `ztna ${VERSION}`);
  assert.match(lines[1], new RegExp(`^libquiche ${BOUND_QUICHE_VERSION.replaceAll(".", "\\.")} `));
  assert.equal(run.stderr, "");
});

Deno.test("--version without a loadable libquiche prints ztna's version and the error, exit 1", async () => {
  const run = await ztna(["--version"], { ZTNA_LIBQUICHE: "/nonexistent/libquiche.so" });
  assertExit(run, 1);
  assert.equal(run.stdout, `ztna ${VERSION}\n`);
  assert.match(run.stderr, /^ztna: libquiche not found \(tried \/nonexistent\/libquiche\.so\)/);
});

Deno.test("an unknown command is a usage error naming it, exit 2", async () => {
  const run = await ztna(["frobnicate", "--now"]);
  assertExit(run, 2);
  assert.equal(run.stdout, "");
  assert.match(
    run.stderr,
    /^ztna: unknown command 'frobnicate' \(commands: [a-z, ]*\bprobe\b[a-z, ]*\)$/m,
  );
});

Deno.test("unknown flags are usage errors, before and after the command, exit 2", async () => {
  const top = await ztna(["--frobnicate"]);
  assertExit(top, 2);
  assert.match(top.stderr, /^ztna: unknown option '--frobnicate'$/m);

  const sub = await ztna(["probe", "quic", "127.0.0.1:4433", "--frobnicate"]);
  assertExit(sub, 2);
  assert.match(sub.stderr, /^ztna probe: unknown option '--frobnicate'$/m);
  assert.match(sub.stderr, /Run 'ztna probe --help' for usage\./);
  assert.doesNotMatch(sub.stderr, /\bat .*\.ts:\d+/, "no stack trace");
});

Deno.test("bad --log-format and --log-level values are usage errors, exit 2", async () => {
  const format = await ztna(["probe", "quic", "127.0.0.1:4433", "--log-format", "xml"]);
  assertExit(format, 2);
  assert.match(format.stderr, /invalid --log-format 'xml': expected text or json/);

  const level = await ztna(["--log-level", "loud", "probe", "--help"]);
  assertExit(level, 2);
  assert.match(level.stderr, /^ztna: invalid --log-level 'loud': expected one of trace, debug,/m);
});

Deno.test("probe --help prints the command's usage, exit 0", async () => {
  for (const args of [["probe", "--help"], ["probe", "quic", "-h"], ["--help", "probe"]]) {
    const run = await ztna(args);
    assertExit(run, 0);
    assert.match(
      run.stdout,
      /^Usage: ztna probe quic HOST:PORT \[--server-name NAME\] --ca CA\.pem/,
    );
    assert.match(run.stdout, /--timeout-ms N/);
    assert.match(run.stdout, /--log-format FORMAT/);
  }
});

Deno.test("probe usage errors: missing flag, missing target, bad values, exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["probe", "quic", "127.0.0.1:4433", "--ca", "ca.pem"],
      /missing required option --server-name/,
    ],
    [["probe", "quic", "127.0.0.1:4433", "--server-name", "a"], /missing required option --ca/],
    [["probe", "quic", "--server-name", "a", "--ca", "ca.pem"], /missing HOST:PORT/],
    [["probe"], /missing what to probe/],
    [["probe", "tcp", "127.0.0.1:1"], /unknown probe 'tcp' \(available: quic, nat-type, ping\)/],
    [["probe", "quic", "nowhere", "--server-name", "a", "--ca", "c"], /invalid address "nowhere"/],
    [["probe", "quic", "127.0.0.1:1", "--alpn"], /option '--alpn' needs a value/],
    [
      ["probe", "quic", "127.0.0.1:1", "--server-name", "a", "--ca", "c", "--timeout-ms", "soon"],
      /invalid --timeout-ms 'soon'/,
    ],
    [
      ["probe", "quic", "127.0.0.1:1", "--server-name", "a", "--ca", "c", "--cert", "c.pem"],
      /--cert and --key go together/,
    ],
  ];
  for (const [args, message] of cases) {
    const run = await ztna(args);
    assertExit(run, 2);
    assert.match(run.stderr, /^ztna probe: /);
    assert.match(run.stderr, message);
  }
});

Deno.test("probe quic reports ALPN, RTT, MTU, DATAGRAMs and the certificate, and closes cleanly", async () => {
  await withServer({}, async (server) => {
    const run = await ztna(probeArgs(server));
    assertExit(run, 0);
    assert.equal(run.stderr, "", "nothing logged at the default level");
    const out = run.stdout;
    assert.match(
      out,
      new RegExp(`^QUIC probe of ${server.target} \\(server name server\\.test\\): OK`),
    );
    assert.match(out, new RegExp(`^ {2}peer address {8}${server.target}$`, "m"));
    assert.match(out, /^ {2}handshake {11}\d+\.\d ms$/m);
    assert.match(out, /^ {2}ALPN {16}ztna$/m);
    assert.match(out, /^ {2}smoothed RTT {8}[\d.]+ ms \(min [\d.]+ ms\)$/m);
    assert.match(out, /^ {2}path MTU {12}\d+ bytes$/m);
    assert.match(out, /^ {2}DATAGRAMs {11}supported \(max payload \d+ bytes\)$/m);
    assert.match(out, /^ {4}subject {11}CN=server\.test$/m);
    assert.match(out, /^ {4}issuer {12}CN=ztna cli CA$/m);
    assert.match(out, /^ {4}SANs {14}DNS:server\.test$/m);
    assert.match(out, /^ {4}valid {13}\S+ to \S+ \(expires in \d+ days\)$/m);
    const close = await serverSideClose(server);
    assert.deepEqual(close, {
      by: "peer",
      isApplication: true,
      code: 0,
      reason: "ztna probe done",
    });
  });
});

Deno.test("probe quic --json prints one JSON object; --log-format json logs JSON Lines", async () => {
  await withServer({}, async (server) => {
    const run = await ztna(
      probeArgs(server, "--json", "--log-level", "debug", "--log-format", "json"),
    );
    assertExit(run, 0);
    assert.equal(run.stdout.trimEnd().split("\n").length, 1, "one line on stdout");
    const report = JSON.parse(run.stdout);
    assert.equal(report.target, server.target);
    assert.equal(report.peerAddress, server.target);
    assert.equal(report.serverName, SERVER_NAME);
    assert.equal(report.alpn, "ztna");
    assert.ok(report.handshakeMs > 0 && report.handshakeMs < 5_000, `${report.handshakeMs}`);
    assert.ok(report.smoothedRttMs > 0, `${report.smoothedRttMs}`);
    assert.ok(report.minRttMs > 0 && report.minRttMs <= report.smoothedRttMs * 2);
    assert.ok(report.pathMtu >= 1200, `${report.pathMtu}`);
    assert.equal(report.datagrams.supported, true);
    assert.ok(report.datagrams.maxPayload > 1000, `${report.datagrams.maxPayload}`);
    assert.equal(report.clientCertificate, false);
    const certificate = report.peerCertificate;
    assert.equal(certificate.subject, "CN=server.test");
    assert.equal(certificate.issuer, "CN=ztna cli CA");
    assert.deepEqual(certificate.subjectAltNames, ["DNS:server.test"]);
    assert.ok(Date.parse(certificate.notBefore) < Date.now());
    assert.ok(Date.parse(certificate.notAfter) > Date.now());
    assert.match(certificate.serialNumber, /^[0-9a-f]+$/);
    assert.match(certificate.sha256Fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);

    const records = run.stderr.trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.ok(records.length >= 2, run.stderr);
    for (const record of records) {
      assert.equal(record.level, "DEBUG");
      assert.match(record.logger, /^ztna\./);
      assert.equal(typeof record.message, "string");
    }
    assert.ok(
      records.some((r) => r.logger === "ztna.probe" && r.properties.target === server.target),
    );
  });
});

Deno.test("probe quic --log-level debug writes text log lines to stderr", async () => {
  await withServer({}, async (server) => {
    const run = await ztna(probeArgs(server, "--log-level", "debug"));
    assertExit(run, 0);
    assert.match(run.stderr, /\[DBG\] ztna·probe: probing /);
    assert.match(run.stderr, /\[DBG\] ztna·quic: connection with .* established/);
    assert.match(run.stdout, /ALPN {16}ztna/);
  });
});

Deno.test("probe quic over IPv6", async () => {
  await withServer({ host: "::1" }, async (server) => {
    assert.match(server.target, /^\[::1\]:\d+$/);
    const run = await ztna(probeArgs(server, "--json"));
    assertExit(run, 0);
    assert.equal(JSON.parse(run.stdout).peerAddress, server.target);
  });
});

Deno.test("probe quic with a server certificate from another CA fails with 'unknown CA', exit 1", async () => {
  await withServer({}, async (server) => {
    const other = await makeTestPki("cli-other");
    try {
      const run = await ztna([
        "probe",
        "quic",
        server.target,
        "--server-name",
        SERVER_NAME,
        "--ca",
        other.caPath,
      ]);
      assertExit(run, 1);
      assert.equal(run.stdout, "");
      assert.equal(
        run.stderr.trimEnd(),
        `ztna probe: ${server.target}: handshake failed: closed locally: TLS alert 48 (unknown CA); ` +
          `the server's certificate is not signed by a CA in ${other.caPath}`,
      );
      assert.equal(server.accepted.length, 0);
    } finally {
      await other.cleanup();
    }
  });
});

Deno.test("probe quic with a wrong server name or ALPN fails with the TLS alert, exit 1", async () => {
  await withServer({}, async (server) => {
    const name = await ztna([
      "probe",
      "quic",
      server.target,
      "--server-name",
      "other.test",
      "--ca",
      server.pki.caPath,
    ]);
    assertExit(name, 1);
    assert.match(name.stderr, /handshake failed: closed locally: TLS alert 42 \(bad certificate\)/);
    assert.match(name.stderr, /is it valid for "other\.test"\?/);

    const alpn = await ztna(probeArgs(server, "--alpn", "h3"));
    assertExit(alpn, 1);
    assert.match(alpn.stderr, /closed by peer: TLS alert 120 \(no application protocol\)/);
    assert.match(alpn.stderr, /the server does not speak ALPN "h3"/);
    assert.equal(server.accepted.length, 0);
  });
});

Deno.test("probe quic against a mutual-TLS server: refused without a client certificate, accepted with one", async () => {
  await withServer({ requireClientCertificate: true }, async (server) => {
    const refused = await ztna(probeArgs(server));
    assertExit(refused, 1);
    assert.match(
      refused.stderr,
      /connection closed right after the handshake: closed by peer: TLS alert 116 \(certificate required\)/,
    );
    assert.match(refused.stderr, /give --cert and --key/);
    assert.equal(refused.stdout, "");

    const rogue = await makeTestPki("cli-rogue");
    try {
      const run = await ztna(
        probeArgs(server, "--cert", rogue.client.certPath, "--key", rogue.client.keyPath),
      );
      assertExit(run, 1);
      assert.match(
        run.stderr,
        /closed by peer: TLS alert \d+ \(.*\); the server refused the client/,
      );
    } finally {
      await rogue.cleanup();
    }
    assert.equal(server.accepted.length, 0);

    const accepted = await ztna(
      probeArgs(server, "--cert", server.pki.client.certPath, "--key", server.pki.client.keyPath),
    );
    assertExit(accepted, 0);
    assert.match(accepted.stdout, /client certificate {2}presented, accepted/);
    assert.equal((await serverSideClose(server)).reason, "ztna probe done");
  });
});

Deno.test("probe quic with nothing answering times out, exit 1", async () => {
  // A client-only endpoint owns the port and never answers.
  const silent = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  const pki = await makeTestPki("cli-silent");
  try {
    const target = formatAddress(silent.localAddress);
    const started = performance.now();
    const run = await ztna([
      "probe",
      "quic",
      target,
      "--server-name",
      SERVER_NAME,
      "--ca",
      pki.caPath,
      "--timeout-ms",
      "500",
    ]);
    const elapsed = performance.now() - started;
    assertExit(run, 1);
    assert.equal(
      run.stderr.trimEnd(),
      `ztna probe: ${target}: timed out after 500 ms waiting for the QUIC handshake ` +
        "(no answer; is a QUIC server listening there?)",
    );
    assert.ok(elapsed < 15_000, `took ${elapsed} ms`);
  } finally {
    await silent.close();
    await pki.cleanup();
  }
});

Deno.test("probe quic with an unreadable CA file fails with a clear error, exit 1", async () => {
  const run = await ztna([
    "probe",
    "quic",
    "127.0.0.1:4433",
    "--server-name",
    SERVER_NAME,
    "--ca",
    "/nonexistent/ca.pem",
  ]);
  assertExit(run, 1);
  assert.equal(
    run.stderr.trimEnd(),
    "ztna probe: cannot load CA certificates from /nonexistent/ca.pem",
  );
});
