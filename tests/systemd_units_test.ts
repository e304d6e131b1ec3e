/**
 * The systemd units in contrib/systemd: each passes `systemd-analyze verify`
 * without a warning (with ExecStart pointed at a real executable, as verify
 * requires; it needs no systemd running as PID 1), carries the settings its
 * role needs, and its sample configuration is one `ztna <role> --config`
 * accepts.
 */
import assert from "node:assert/strict";
import type { Command } from "../lib/cli/command.ts";
import { REPO } from "./support/cli.ts";
import { withTempDir } from "./support/temp_dir.ts";

const UNITS = `${REPO}contrib/systemd`;
const ROLES = ["relay", "connector", "agent"] as const;
type Role = typeof ROLES[number];

/** The `[Service]` settings of a unit file, by key (repeated keys keep their last value). */
function serviceSettings(text: string): Map<string, string> {
  const settings = new Map<string, string>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = line.match(/^\[(.+)\]$/);
    if (header) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf("=");
    if (section === "Service" && eq > 0) settings.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return settings;
}

/** Runs `systemd-analyze verify` on `unit`; the exit code and both outputs. */
async function verify(unit: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("systemd-analyze", {
    args: ["verify", "--man=no", unit],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** Writes `text` as `<dir>/<name>` with ExecStart's /usr/local/bin/ztna replaced by an executable there. */
async function unitCopy(dir: string, name: string, text: string): Promise<string> {
  const binary = `${dir}/ztna`;
  await Deno.writeTextFile(binary, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, text.replaceAll("/usr/local/bin/ztna", binary));
  return path;
}

/** What every unit has, and what each role adds. */
const EXPECTED: Record<Role, Record<string, string>> = {
  relay: {
    DynamicUser: "yes",
    StateDirectory: "ztna",
    Environment: "ZTNA_STATE_DIR=/var/lib/ztna",
    RuntimeDirectory: "ztna-relay",
    CapabilityBoundingSet: "",
    AmbientCapabilities: "",
    NoNewPrivileges: "yes",
  },
  connector: {
    DynamicUser: "yes",
    NoNewPrivileges: "yes",
    ProtectSystem: "strict",
    PrivateTmp: "yes",
    RuntimeDirectory: "ztna-connector",
    CapabilityBoundingSet: "",
    AmbientCapabilities: "",
  },
  agent: {
    DynamicUser: "yes",
    CapabilityBoundingSet: "CAP_NET_ADMIN",
    AmbientCapabilities: "CAP_NET_ADMIN",
    DeviceAllow: "/dev/net/tun rw",
    RuntimeDirectory: "ztna-agent",
    NoNewPrivileges: "yes",
  },
};

for (const role of ROLES) {
  Deno.test(`contrib/systemd/ztna-${role}.service: systemd-analyze verify is clean; the settings of a ${role}`, async () => {
    const name = `ztna-${role}.service`;
    const text = await Deno.readTextFile(`${UNITS}/${name}`);
    const settings = serviceSettings(text);
    const want: Record<string, string> = {
      ExecStart: `/usr/local/bin/ztna ${role} --config /etc/ztna/${role}.toml`,
      ExecReload: "/bin/kill -HUP $MAINPID",
      KillSignal: "SIGTERM",
      Restart: "on-failure",
      ...EXPECTED[role],
    };
    for (const [key, value] of Object.entries(want)) {
      assert.equal(settings.get(key), value, `${name}: ${key}`);
    }
    await withTempDir("ztna-units-", async (dir) => {
      const result = await verify(await unitCopy(dir, name, text));
      assert.deepEqual(result, { code: 0, stdout: "", stderr: "" });
    });
  });

  Deno.test(`contrib/systemd/${role}.toml.example is a configuration 'ztna ${role}' accepts, its admin socket in the unit's runtime directory`, async () => {
    const path = `${UNITS}/${role}.toml.example`;
    const { command } = await import(`../cmd/${role}.ts`) as { command: Command };
    // Parses the file against the command's options: an unknown key or a bad value throws.
    command.prepare(["--config", path], () => undefined);
    const unit = serviceSettings(await Deno.readTextFile(`${UNITS}/ztna-${role}.service`));
    const toml = await Deno.readTextFile(path);
    assert.match(
      toml,
      new RegExp(`^admin-socket = "/run/${unit.get("RuntimeDirectory")}/${role}\\.sock"$`, "m"),
    );
  });
}

Deno.test("systemd-analyze verify reports a misspelt setting (the clean runs above can fail)", async () => {
  await withTempDir("ztna-units-", async (dir) => {
    const text = await Deno.readTextFile(`${UNITS}/ztna-connector.service`);
    const broken = text.replace("PrivateTmp=", "PrivateTemp=");
    const line = broken.split("\n").findIndex((l) => l.startsWith("PrivateTemp=")) + 1;
    const unit = await unitCopy(dir, "broken.service", broken);
    const result = await verify(unit);
    assert.equal(
      result.stderr,
      `${unit}:${line}: Unknown key 'PrivateTemp' in section [Service], ignoring.\n`,
    );
  });
});
