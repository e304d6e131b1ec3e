/**
 * Options from a configuration file (`--config FILE`, TOML) and `ZTNA_` variables, merged
 * under the flags by the real command layer (defineCommand's prepare): precedence flag >
 * variable > file, and every error naming the key and the file, or the variable. Then
 * `ztna` itself in a child process: a bad key is exit 2 with one exact line, and a relay
 * started from a configuration file alone listens where the file says.
 */
import assert from "node:assert/strict";
import { defineCommand } from "../lib/cli/command.ts";
import type { ConfigFileValues, OptionValue } from "../lib/cli/config_file.ts";
import { integerOption } from "../lib/cli/args.ts";
import { UsageError } from "../lib/cli/errors.ts";
import { parsePublish, servicesFromTable } from "../lib/connector/services.ts";
import { assertExit, ztna } from "./support/cli.ts";
import { withTempDir } from "./support/temp_dir.ts";
import { makeTestOrg, nodeIdentity, RELAY_NAME, startNode, stopNode } from "./support/nodes.ts";

/** What the test command's run saw. */
interface Seen {
  values: Record<string, OptionValue | undefined>;
  configFile?: ConfigFileValues;
}

/** A command with options of every kind; its run checks --max-sessions like the daemons do. */
function testCommand(seen: Seen[]) {
  return defineCommand({
    usage: "Usage: test",
    config: { tables: ["services"] },
    options: {
      relay: { type: "string" },
      "max-sessions": { type: "string" },
      forward: { type: "string", multiple: true },
      "relay-only": { type: "boolean" },
    },
    run({ values, configFile }) {
      integerOption(values["max-sessions"], "max-sessions", 7);
      seen.push({ values: { ...values }, configFile });
      return Promise.resolve();
    },
  });
}

/** Prepares and runs the test command; resolves with what its run saw. */
async function parse(
  args: string[],
  env: Record<string, string> = {},
): Promise<Seen & { logLevel: string | undefined }> {
  const seen: Seen[] = [];
  const prepared = testCommand(seen).prepare(args, (name) => env[name]);
  await prepared.run();
  return { ...seen[0], logLevel: prepared.logDefaults?.level };
}

/** The UsageError message preparing and running the test command gives. */
async function usageError(args: string[], env: Record<string, string> = {}): Promise<string> {
  try {
    await parse(args, env);
  } catch (error) {
    assert.ok(error instanceof UsageError, `not a UsageError: ${error}`);
    return error.message;
  }
  throw new Error("no error");
}

Deno.test("config: flags override ZTNA_ variables, which override the file, option by option", async () => {
  await withTempDir("ztna-config-", async (dir) => {
    const file = `${dir}/test.toml`;
    await Deno.writeTextFile(
      file,
      [
        `relay = "203.0.113.5:4433"`,
        `max-sessions = 100`,
        `forward = ["127.0.0.1:1", "127.0.0.1:2"]`,
        `relay-only = true`,
        `log-level = "debug"`,
        `[services.web]`,
        `forward = ["127.0.0.1:8080"]`,
      ].join("\n"),
    );
    const fileOnly = await parse(["--config", file]);
    assert.deepEqual(fileOnly.values, {
      config: file,
      relay: "203.0.113.5:4433",
      "max-sessions": "100",
      forward: ["127.0.0.1:1", "127.0.0.1:2"],
      "relay-only": true,
      "log-level": "debug",
    });
    assert.equal(fileOnly.logLevel, "debug");
    assert.deepEqual(JSON.parse(JSON.stringify(fileOnly.configFile?.tables)), {
      services: { web: { forward: ["127.0.0.1:8080"] } },
    });

    const env = {
      ZTNA_CONFIG: file,
      ZTNA_MAX_SESSIONS: "200",
      ZTNA_FORWARD: "127.0.0.1:3  127.0.0.1:4",
      ZTNA_LOG_LEVEL: "warning",
      ZTNA_RELAY_ONLY: "no",
      // Not an option of this command: ignored. Empty: unset.
      ZTNA_LIBQUICHE: "/nowhere/libquiche.so",
      ZTNA_RELAY: "",
    };
    const withEnv = await parse([], env);
    assert.deepEqual(withEnv.values, {
      config: file,
      relay: "203.0.113.5:4433",
      "max-sessions": "200",
      forward: ["127.0.0.1:3", "127.0.0.1:4"],
      "relay-only": false,
      "log-level": "warning",
    });
    assert.equal(withEnv.logLevel, "warning");

    const withFlags = await parse(
      ["--max-sessions", "300", "--forward", "127.0.0.1:5", "--relay", "198.51.100.1:1"],
      env,
    );
    assert.deepEqual(withFlags.values, {
      config: file,
      relay: "198.51.100.1:1",
      "max-sessions": "300",
      forward: ["127.0.0.1:5"],
      "relay-only": false,
      "log-level": "warning",
    });

    // A --config flag wins over ZTNA_CONFIG.
    const other = `${dir}/other.toml`;
    await Deno.writeTextFile(other, `max-sessions = "9"\n`);
    const otherFile = await parse(["--config", other], { ZTNA_CONFIG: file });
    assert.deepEqual(otherFile.values, { config: other, "max-sessions": "9" });
  });
});

Deno.test("config: every error names the file and the key, or the variable", async () => {
  await withTempDir("ztna-config-", async (dir) => {
    const write = async (name: string, text: string) => {
      await Deno.writeTextFile(`${dir}/${name}`, text);
      return `${dir}/${name}`;
    };
    const typo = await write("typo.toml", `max-sesions = 100\n`);
    assert.equal(await usageError(["--config", typo]), `${typo}: unknown key "max-sesions"`);
    const help = await write("help.toml", `help = true\n`);
    assert.equal(await usageError(["--config", help]), `${help}: unknown key "help"`);
    const boolean = await write("bool.toml", `relay-only = "yes"\n`);
    assert.equal(
      await usageError(["--config", boolean]),
      `${boolean}: key "relay-only" must be a boolean (true or false), not a string`,
    );
    const float = await write("float.toml", `max-sessions = 1.5\n`);
    assert.equal(
      await usageError(["--config", float]),
      `${float}: key "max-sessions" must be a string or an integer, not a float`,
    );
    const list = await write("list.toml", `relay = ["a", "b"]\n`);
    assert.equal(
      await usageError(["--config", list]),
      `${list}: key "relay" must be a string or an integer, not an array`,
    );
    const nested = await write("nested.toml", `forward = [["127.0.0.1:1"]]\n`);
    assert.equal(
      await usageError(["--config", nested]),
      `${nested}: key "forward" must be a string, an integer or an array of them, not an array`,
    );
    const notTable = await write("services.toml", `services = "web"\n`);
    assert.equal(
      await usageError(["--config", notTable]),
      `${notTable}: key "services" must be a table, not a string`,
    );
    const broken = await write("broken.toml", `relay = "a"\nmax-sessions = \n`);
    assert.equal(
      await usageError(["--config", broken]),
      `${broken}: invalid TOML at line 2, column 16: invalid value`,
    );
    assert.equal(
      await usageError(["--config", `${dir}/missing.toml`]),
      `${dir}/missing.toml: cannot read the configuration file: no such file`,
    );
    // A value of the right type that the option's own check refuses names its source.
    const zero = await write("zero.toml", `max-sessions = 0\n`);
    assert.equal(
      await usageError(["--config", zero]),
      `${zero}: key "max-sessions": invalid --max-sessions '0': expected an integer >= 1`,
    );
    assert.equal(
      await usageError([], { ZTNA_MAX_SESSIONS: "lots" }),
      `ZTNA_MAX_SESSIONS: invalid --max-sessions 'lots': expected an integer >= 1`,
    );
    assert.equal(
      await usageError(["--max-sessions", "lots"]),
      `invalid --max-sessions 'lots': expected an integer >= 1`,
    );
    assert.equal(
      await usageError([], { ZTNA_RELAY_ONLY: "maybe" }),
      `ZTNA_RELAY_ONLY: expected true or false (1/0, yes/no), not 'maybe'`,
    );
    assert.equal(
      await usageError([], { ZTNA_LOG_LEVEL: "loud" }),
      `ZTNA_LOG_LEVEL: invalid --log-level 'loud': expected one of trace, debug, info, warning, error, fatal`,
    );
    assert.equal(
      await usageError([], { ZTNA_CONFIG: `${dir}/gone.toml` }),
      `${dir}/gone.toml: cannot read the configuration file: no such file`,
    );
  });
});

Deno.test("connector services: --publish values and [services.NAME] tables, checked", () => {
  assert.deepEqual(parsePublish("web=127.0.0.1:8080,127.0.0.1:8443;allow=alice, bob"), {
    name: "web",
    forward: [{ hostname: "127.0.0.1", port: 8080 }, { hostname: "127.0.0.1", port: 8443 }],
    allow: ["alice", "bob"],
  });
  const error = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return (e as Error).message;
    }
    return "no error";
  };
  assert.equal(
    error(() => parsePublish("web=127.0.0.1:8080")),
    "--publish: expected NAME=HOST:PORT[,HOST:PORT...];allow=AGENT[,AGENT...], not 'web=127.0.0.1:8080'",
  );
  assert.equal(
    error(() => parsePublish("Web=127.0.0.1:1;allow=*")),
    `--publish: invalid service name "Web"`,
  );
  assert.equal(
    error(() => parsePublish("web=;allow=*")),
    "--publish: service web has no forward target",
  );
  assert.equal(
    error(() => parsePublish("web=127.0.0.1:1;allow=")),
    "--publish: service web has no access list",
  );
  assert.deepEqual(
    servicesFromTable({ db: { forward: ["127.0.0.1:5432"], allow: ["alice"] } }, "c.toml"),
    [{ name: "db", forward: [{ hostname: "127.0.0.1", port: 5432 }], allow: ["alice"] }],
  );
  assert.equal(
    error(() => servicesFromTable({ db: { forward: ["127.0.0.1:5432"], alow: ["x"] } }, "c.toml")),
    `c.toml: unknown key "services.db.alow"`,
  );
  assert.equal(
    error(() => servicesFromTable({ db: { forward: [5432], allow: ["x"] } }, "c.toml")),
    `c.toml: key "services.db.forward" must be a string or an array of strings`,
  );
  assert.equal(
    error(() => servicesFromTable({ db: { allow: ["x"] } }, "c.toml")),
    "c.toml: [services.db]: service db has no forward target",
  );
});

/** The first line of a run's stderr. */
const firstLine = (text: string) => text.split("\n")[0];

Deno.test("ztna connector --config with a misspelt key: exit 2, one line naming the file and the key", async () => {
  await withTempDir("ztna-config-", async (dir) => {
    const file = `${dir}/connector.toml`;
    await Deno.writeTextFile(file, `relay = "127.0.0.1:4433"\nmax-sesions = 100\n`);
    const run = await ztna(["connector", "--config", file]);
    assertExit(run, 2);
    assert.equal(firstLine(run.stderr), `ztna connector: ${file}: unknown key "max-sesions"`);
    assert.equal(run.stdout, "");

    const env = await ztna(["agent", "--config", file], { env: { ZTNA_MAX_SESIONS: "1" } });
    assertExit(env, 2);
    assert.equal(firstLine(env.stderr), `ztna agent: ${file}: unknown key "max-sesions"`);

    const bad = await ztna(["connector", "--publish", "web=127.0.0.1:1;allow=*"], {
      env: { ZTNA_MAX_UDP_FLOWS: "0" },
    });
    assertExit(bad, 2);
    assert.equal(
      firstLine(bad.stderr),
      "ztna connector: ZTNA_MAX_UDP_FLOWS: invalid --max-udp-flows '0': expected an integer 1-1048576",
    );
    const help = await ztna(["relay", "--help"]);
    assertExit(help, 0);
    assert.match(help.stdout, /\n {2}--config FILE {8}read options from a TOML file/);
  });
});

Deno.test("ztna relay --config: listens where the file says, with the identity the file names", async () => {
  const org = await makeTestOrg("config");
  let relay: Deno.ChildProcess | undefined;
  try {
    const relayId = await org.issue("relay-1", "relay");
    // A free port: bind one, note it, let it go.
    const probe = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const file = `${org.dir}/relay.toml`;
    await Deno.writeTextFile(
      file,
      [
        `listen = "127.0.0.1:${port}"`,
        `cert = "${relayId.certPath}"`,
        `key = "${relayId.keyPath}"`,
        `ca = "${org.caPath}"`,
        `no-stun = true`,
        `max-nodes = 10`,
        `admin-socket = "${org.dir}/relay.sock"`,
        `log-format = "json"`,
        `log-level = "fatal"`,
      ].join("\n"),
    );
    relay = new Deno.Command(Deno.execPath(), {
      // The flag before the command name beats ZTNA_LOG_LEVEL, which beats the file's.
      args: [
        "run",
        "--allow-all",
        new URL("../main.ts", import.meta.url).pathname,
        "--log-level",
        "info",
        "relay",
      ],
      env: { ZTNA_CONFIG: file, ZTNA_LOG_LEVEL: "error" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const lines = relay.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!/"listening on /.test(text)) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the relay exited:\n${text}`);
      text += value;
    }
    const listening = text.split("\n").map((line) => line.trim()).filter(Boolean)
      .map((line) => JSON.parse(line)).find((record) => /^listening on /.test(record.message));
    assert.equal(listening.properties.address, `127.0.0.1:${port}`);
    // A connector reaches it there, verifying the identity the file named.
    const connector = startNode(
      { hostname: "127.0.0.1", port },
      await nodeIdentity(org, "conn-1", "connector", ["web"]),
      "connector",
      { serverName: RELAY_NAME },
    );
    try {
      await connector.link.start();
      await connector.link.register("web");
      assert.equal(connector.link.isConnected, true);
    } finally {
      await stopNode(connector);
    }
    await lines.cancel();
    relay.kill("SIGTERM");
    assert.equal((await relay.status).code, 0);
    relay = undefined;
  } finally {
    if (relay) {
      relay.kill("SIGKILL");
      await relay.status;
    }
    await org.cleanup();
  }
});
