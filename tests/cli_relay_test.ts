/**
 * `ztna relay` as an operator runs it (real processes): the first run creates
 * a CA and identity in the state directory and prints the commands that issue
 * node identities; identities issued with those commands connect for real and
 * carry a session; later runs reuse the files; explicit --cert/--key/--ca run
 * with no CA key anywhere; signals stop it with exit 0; a busy port is exit 1.
 */
import assert from "node:assert/strict";
import type { NodeIdentity } from "../lib/node/configs.ts";
import { formatAddress, parseHostPort, type SocketAddress } from "../lib/net/address.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import { summarizeCertificateFile } from "../lib/identity/summary.ts";
import { defaultStateDir, resolveStateDir } from "../lib/state_dir.ts";
import { waitFor } from "./support/bytes.ts";
import { assertExit, MAIN, ztna } from "./support/cli.ts";
import { datagramRoundTrips, streamRoundTrip } from "./support/exchange.ts";
import { openSession, startNode, stopNode } from "./support/nodes.ts";
import { withTempDir } from "./support/temp_dir.ts";

/** One JSON Lines log record of the relay process. */
interface LogRecord {
  level: string;
  logger: string;
  message: string;
  properties: Record<string, unknown>;
}

/** A `ztna relay` process whose stdout and stderr (JSON log lines) are collected as they come. */
class RelayProcess {
  stdout = "";
  stderr = "";
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>[];

  constructor(args: string[], env: Record<string, string>) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", MAIN, "relay", "--log-format", "json", ...args],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.status = this.#child.status;
    this.#pumps = [
      this.#pump(this.#child.stdout, (text) => (this.stdout += text)),
      this.#pump(this.#child.stderr, (text) => (this.stderr += text)),
    ];
  }

  async #pump(stream: ReadableStream<Uint8Array>, append: (text: string) => void): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) append(text);
  }

  /** The complete JSON log records so far. */
  get records(): LogRecord[] {
    return this.stderr.split("\n").slice(0, -1).map((line) => JSON.parse(line));
  }

  /**
   * Waits for a log record whose message, without the quotes LogTape puts
   * around string values, matches `pattern`; fails if the process exits first.
   */
  async record(pattern: RegExp, timeoutMs = 15_000): Promise<LogRecord> {
    let exited = false;
    this.status.then(() => (exited = true));
    let found: LogRecord | undefined;
    await waitFor(
      () => {
        found = this.records.find((r) => pattern.test(r.message.replaceAll('"', "")));
        if (!found && exited) throw new Error(`relay exited:\n${this.stdout}\n${this.stderr}`);
        return found !== undefined;
      },
      `a log record matching ${pattern}\n${this.stderr}`,
      timeoutMs,
    );
    return found!;
  }

  /** Waits for 'listening on ADDR' and returns ADDR. */
  async listening(): Promise<SocketAddress> {
    const record = await this.record(/^listening on /);
    return parseHostPort(record.properties.address as string);
  }

  /** Sends `signal` and returns the exit code once stdout and stderr are drained. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<number> {
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited.
    }
    const { code } = await this.status;
    await Promise.all(this.#pumps);
    return code;
  }
}

/** Splits a POSIX shell command line of plain and single-quoted words. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const match of line.matchAll(/(?:[^\s']+|'[^']*')+/g)) {
    words.push(match[0].replace(/'([^']*)'/g, "$1"));
  }
  return words;
}

/** The identity files `ztna identity issue --name NAME --out DIR` wrote. */
function issuedFiles(dir: string, name: string): NodeIdentity {
  return {
    certificateFile: `${dir}/${name}.crt`,
    privateKeyFile: `${dir}/${name}.key`,
    caFile: `${dir}/ca.crt`,
  };
}

/**
 * Connects a connector publishing `web` and an agent to the relay, opens a
 * session and checks DATAGRAMs and a stream go through it end to end.
 */
async function sessionThroughRelay(
  relay: SocketAddress,
  serverName: string,
  connectorId: NodeIdentity,
  agentId: NodeIdentity,
): Promise<void> {
  const connector = startNode(relay, connectorId, "connector", { serverName });
  const agent = startNode(relay, agentId, "agent", { serverName });
  try {
    await connector.link.start();
    await agent.link.start();
    assert.equal(agent.link.observed, formatAddress(agent.endpoint.localAddress), "QAD");
    await connector.link.register("web");
    const session = await openSession(agent, "web");
    await waitFor(() => connector.accepted.length === 1, "the connector to accept the session");
    assert.equal(await datagramRoundTrips(session, 200), 200);
    const stream = await streamRoundTrip(session, 256 << 10);
    assert.equal(stream.received, stream.sent);
  } finally {
    await stopNode(agent);
    await stopNode(connector);
  }
}

/** Every file path under `dir`. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await filesUnder(path));
    else out.push(path);
  }
  return out.sort();
}

Deno.test("relay first run: creates CA and identity, prints the issue commands; issued nodes connect; second run reuses", async () => {
  await withTempDir("ztna-cli-relay-", async (dir) => {
    const state = `${dir}/state`;
    const env = { ZTNA_STATE_DIR: state };
    const first = new RelayProcess(["--listen", "127.0.0.1:0"], env);
    try {
      const address = await first.listening();
      assert.notEqual(address.port, 0);
      const where = await first.record(/^state directory /);
      assert.deepEqual(where.properties, { path: state, why: "$ZTNA_STATE_DIR" });
      await first.record(/^created CA /);
      const created = await first.record(/^created relay identity /);
      assert.equal(created.properties.cert, `${state}/relay/relay.crt`);
      assert.deepEqual(
        (await filesUnder(state)).map((path) => path.slice(state.length + 1)),
        ["ca/ca.crt", "ca/ca.key", "relay/ca.crt", "relay/relay.crt", "relay/relay.key"],
      );
      assert.equal((await Deno.stat(`${state}/ca/ca.key`)).mode! & 0o777, 0o600);
      assert.equal((await Deno.stat(`${state}/relay/relay.key`)).mode! & 0o777, 0o600);
      const relayCert = await summarizeCertificateFile(`${state}/relay/relay.crt`);
      assert.equal(relayCert.role, "relay");
      assert.ok(relayCert.hosts.includes("localhost"), `hosts ${relayCert.hosts}`);
      const identity = await first.record(/^identity /);
      assert.equal(identity.properties.sha256, relayCert.sha256Fingerprint);

      // The guide on stdout: where things are and the commands to run next.
      await waitFor(() => first.stdout.includes("grant itself rights"), "the first-run guide");
      assert.match(first.stdout, new RegExp(`^ztna relay: first run in ${state}: created a CA`));
      assert.ok(first.stdout.includes(`CA private key   ${state}/ca/ca.key`), first.stdout);
      assert.ok(first.stdout.includes(`Production: move ${state}/ca/ca.key off this machine`));
      const commands = first.stdout.split("\n")
        .filter((line) => line.startsWith("  ztna identity issue "))
        .map((line) => shellWords(line.trim()));
      assert.equal(commands.length, 2, first.stdout);
      for (const words of commands) {
        assert.deepEqual(words.slice(0, 5), [
          "ztna",
          "identity",
          "issue",
          "--ca-dir",
          `${state}/ca`,
        ]);
      }
      assert.ok(commands[0].includes("connector") && commands[1].includes("agent"));

      // Run them exactly as printed (in a work directory: they write relative --out dirs).
      const work = `${dir}/work`;
      await Deno.mkdir(work);
      for (const words of commands) assertExit(await ztna(words.slice(1), { cwd: work }), 0);
      const connectorName = commands[0][commands[0].indexOf("--name") + 1];
      const agentName = commands[1][commands[1].indexOf("--name") + 1];
      const connectorDir = `${work}/${commands[0][commands[0].indexOf("--out") + 1]}`;
      const agentDir = `${work}/${commands[1][commands[1].indexOf("--out") + 1]}`;

      await sessionThroughRelay(
        address,
        "localhost",
        issuedFiles(connectorDir, connectorName),
        issuedFiles(agentDir, agentName),
      );
      const connected = await first.record(/^connector connector-1 connected from /);
      assert.equal(connected.level, "INFO");
      await first.record(/^agent agent-1 connected from /);
      await first.record(/^session [0-9a-f]{16}: agent-1 -> web at connector-1$/);
      await first.record(/^agent-1 disconnected$/);

      assert.equal(await first.stop("SIGTERM"), 0, first.stderr);
      await first.record(/^SIGTERM: closing$/);
      await first.record(/^stopped$/);
    } finally {
      await first.stop("SIGKILL");
    }

    // Second run: the same files, nothing printed on stdout, a warning about the CA key.
    const before = await Promise.all(
      (await filesUnder(state)).map(async (path) => [path, await Deno.readTextFile(path)]),
    );
    const second = new RelayProcess(["--listen", "127.0.0.1:0"], env);
    try {
      await second.listening();
      await second.record(/^using relay identity /);
      const identity = await second.record(/^identity /);
      const relayCert = await summarizeCertificateFile(`${state}/relay/relay.crt`);
      assert.equal(identity.properties.sha256, relayCert.sha256Fingerprint);
      const warning = await second.record(/^the CA private key .* is on this relay host/);
      assert.equal(warning.level, "WARN");
      assert.equal(await second.stop("SIGINT"), 0, second.stderr);
      assert.equal(second.stdout, "");
      assert.equal(second.records.filter((r) => /^created/.test(r.message)).length, 0);
    } finally {
      await second.stop("SIGKILL");
    }
    const after = await Promise.all(
      (await filesUnder(state)).map(async (path) => [path, await Deno.readTextFile(path)]),
    );
    assert.deepEqual(after, before, "the second run changed nothing");
  });
});

Deno.test("relay with --cert/--key/--ca runs with no CA key anywhere and creates nothing; SIGINT exits 0", async () => {
  await withTempDir("ztna-cli-relay-", async (dir) => {
    const caDir = `${dir}/offline-ca`;
    assertExit(await ztna(["identity", "init-ca", "--dir", caDir, "--name", "Offline Org"]), 0);
    const issue = (...args: string[]) => ztna(["identity", "issue", "--ca-dir", caDir, ...args]);
    assertExit(
      await issue(
        "--name",
        "relay-1",
        "--role",
        "relay",
        "--host",
        "relay.test",
        "--out",
        `${dir}/relay`,
      ),
      0,
    );
    assertExit(
      await issue(
        "--name",
        "conn-1",
        "--role",
        "connector",
        "--service",
        "web",
        "--out",
        `${dir}/conn`,
      ),
      0,
    );
    assertExit(await issue("--name", "alice", "--role", "agent", "--out", `${dir}/alice`), 0);
    // The CA goes offline: no ca.key is left anywhere the relay could reach.
    await Deno.remove(caDir, { recursive: true });
    assert.deepEqual((await filesUnder(dir)).filter((p) => p.endsWith("/ca.key")), []);

    const state = `${dir}/state`;
    const relay = new RelayProcess([
      "--listen",
      "127.0.0.1:0",
      "--cert",
      `${dir}/relay/relay-1.crt`,
      "--key",
      `${dir}/relay/relay-1.key`,
      "--ca",
      `${dir}/relay/ca.crt`,
      "--log-level",
      "debug",
      "--stats-interval",
      "1",
    ], { ZTNA_STATE_DIR: state, HOME: dir });
    try {
      const address = await relay.listening();
      const using = await relay.record(/^using relay identity /);
      assert.equal(using.properties.cert, `${dir}/relay/relay-1.crt`);
      await sessionThroughRelay(
        address,
        "relay.test",
        issuedFiles(`${dir}/conn`, "conn-1"),
        issuedFiles(`${dir}/alice`, "alice"),
      );
      await relay.record(/^session [0-9a-f]{16}: alice -> web at conn-1$/);
      const stats = await relay.record(/^stats: /, 5_000);
      assert.equal(stats.level, "DEBUG");
      assert.equal(typeof stats.properties.datagramsForwarded, "number");
      assert.equal(await relay.stop("SIGINT"), 0, relay.stderr);
      assert.equal(relay.stdout, "");
    } finally {
      await relay.stop("SIGKILL");
    }
    await assert.rejects(Deno.stat(state), Deno.errors.NotFound, "no state directory created");
    await assert.rejects(Deno.stat(`${dir}/.local`), Deno.errors.NotFound);
  });
});

Deno.test("relay on a port in use fails with one clear line, exit 1", async () => {
  await withTempDir("ztna-cli-relay-", async (dir) => {
    const busy = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
    try {
      const target = formatAddress(busy.localAddress);
      const run = await ztna(["relay", "--listen", target], {
        env: { ZTNA_STATE_DIR: `${dir}/state` },
      });
      assertExit(run, 1);
      const lines = run.stderr.trimEnd().split("\n");
      assert.equal(
        lines.at(-1),
        `ztna relay: cannot listen on ${target}: address already in use (another relay?)`,
      );
      assert.doesNotMatch(run.stderr, /\bat .*\.ts:\d+/, "no stack trace");
    } finally {
      await busy.close();
    }
  });
});

Deno.test("relay refuses identities that cannot work, exit 1", async () => {
  await withTempDir("ztna-cli-relay-", async (dir) => {
    const caDir = `${dir}/ca`;
    assertExit(await ztna(["identity", "init-ca", "--dir", caDir]), 0);
    assertExit(await ztna(["identity", "init-ca", "--dir", `${dir}/other`]), 0);
    assertExit(
      await ztna([
        "identity",
        "issue",
        "--ca-dir",
        caDir,
        "--name",
        "alice",
        "--role",
        "agent",
        "--out",
        `${dir}/alice`,
      ]),
      0,
    );
    assertExit(
      await ztna([
        "identity",
        "issue",
        "--ca-dir",
        caDir,
        "--name",
        "relay-1",
        "--role",
        "relay",
        "--host",
        "relay.test",
        "--out",
        `${dir}/relay`,
      ]),
      0,
    );
    const run = (cert: string, key: string, ca: string) =>
      ztna(["relay", "--listen", "127.0.0.1:0", "--cert", cert, "--key", key, "--ca", ca]);

    const agent = await run(`${dir}/alice/alice.crt`, `${dir}/alice/alice.key`, `${caDir}/ca.crt`);
    assertExit(agent, 1);
    assert.match(
      agent.stderr,
      /^ztna relay: .*alice\.crt grants role agent, not relay: issue the relay's identity with 'ztna identity issue --role relay/m,
    );

    const otherCa = await run(
      `${dir}/relay/relay-1.crt`,
      `${dir}/relay/relay-1.key`,
      `${dir}/other/ca.crt`,
    );
    assertExit(otherCa, 1);
    assert.match(
      otherCa.stderr,
      /^ztna relay: .*relay-1\.crt \(issuer "CN=ztna CA"\) is not signed by the CA in .*other\/ca\.crt/m,
    );

    const wrongKey = await run(
      `${dir}/relay/relay-1.crt`,
      `${dir}/alice/alice.key`,
      `${caDir}/ca.crt`,
    );
    assertExit(wrongKey, 1);
    assert.match(
      wrongKey.stderr,
      /^ztna relay: private key from .*alice\.key does not match the certificate/m,
    );

    // A state directory whose relay identity is incomplete is not guessed about.
    const state = `${dir}/state`;
    await Deno.mkdir(`${state}/relay`, { recursive: true });
    await Deno.copyFile(`${dir}/relay/relay-1.crt`, `${state}/relay/relay.crt`);
    const partial = await ztna(["relay", "--listen", "127.0.0.1:0", "--state-dir", state]);
    assertExit(partial, 1);
    assert.match(
      partial.stderr,
      /^ztna relay: incomplete relay identity in .*state\/relay \(missing .*relay\.key, .*ca\.crt\)/m,
    );
  });
});

Deno.test("relay usage errors, exit 2", async () => {
  const cases: [string[], string][] = [
    [[], "missing required option --listen"],
    [
      ["--listen", "nowhere"],
      `invalid --listen: invalid address "nowhere": expected HOST:PORT or [IPv6]:PORT`,
    ],
    [["--listen", "127.0.0.1:0", "--cert", "r.crt"], "--cert, --key and --ca go together"],
    [
      [
        "--listen",
        "127.0.0.1:0",
        "--cert",
        "r.crt",
        "--key",
        "r.key",
        "--ca",
        "ca.crt",
        "--host",
        "a.example",
      ],
      "--state-dir and --host are for an identity the relay creates; not with --cert/--key/--ca",
    ],
    [
      ["--listen", "127.0.0.1:0", "--host", "192.0.2.1"],
      "invalid host '192.0.2.1': an IP address; give the DNS name nodes dial the relay by",
    ],
    [
      ["--listen", "127.0.0.1:0", "--rate-pps", "lots"],
      "invalid --rate-pps 'lots': expected an integer >= 1",
    ],
    [
      ["--listen", "127.0.0.1:0", "--stats-interval", "0"],
      "invalid --stats-interval '0': expected an integer >= 1",
    ],
    [["--listen", "127.0.0.1:0", "--frobnicate"], "unknown option '--frobnicate'"],
  ];
  for (const [args, message] of cases) {
    const run = await ztna(["relay", ...args], { env: { ZTNA_STATE_DIR: "/nonexistent/ztna" } });
    assertExit(run, 2);
    assert.equal(run.stdout, "");
    assert.equal(run.stderr, `ztna relay: ${message}\nRun 'ztna relay --help' for usage.\n`);
  }
  const help = await ztna(["relay", "--help"]);
  assertExit(help, 0);
  assert.match(help.stdout, /^Usage: ztna relay --listen HOST:PORT/);
});

Deno.test("the relay's default state directory: $ZTNA_STATE_DIR, root, $XDG_STATE_HOME, $HOME", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const all = { ZTNA_STATE_DIR: "/srv/ztna", XDG_STATE_HOME: "/home/u/.state", HOME: "/home/u" };
  assert.deepEqual(defaultStateDir({ env: env(all), uid: 0 }), {
    path: "/srv/ztna",
    source: "$ZTNA_STATE_DIR",
  });
  const { ZTNA_STATE_DIR: _, ...user } = all;
  assert.deepEqual(defaultStateDir({ env: env(user), uid: 0 }), {
    path: "/var/lib/ztna",
    source: "root",
  });
  assert.deepEqual(defaultStateDir({ env: env(user), uid: 1000 }), {
    path: "/home/u/.state/ztna",
    source: "$XDG_STATE_HOME",
  });
  assert.deepEqual(
    defaultStateDir({ env: env({ XDG_STATE_HOME: "relative", HOME: "/home/u/" }), uid: 1000 }),
    { path: "/home/u/.local/state/ztna", source: "$HOME" },
  );
  assert.throws(() => defaultStateDir({ env: env({}), uid: 1000 }), /set ZTNA_STATE_DIR or HOME/);
  assert.deepEqual(resolveStateDir("/tmp/s", { env: env(all), uid: 0 }), {
    path: "/tmp/s",
    source: "--state-dir",
  });
});
