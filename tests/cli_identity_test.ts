/**
 * `ztna identity` as an operator runs it (real processes): init-ca, issue for
 * every role with the grants read back from the certificates, refusals to
 * overwrite, usage errors, and show.
 */
import assert from "node:assert/strict";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { decodePem, readGrants, readIdentityFiles } from "../lib/pki/mod.ts";
import { CERTIFICATE_LABEL } from "../lib/pki/pem.ts";
import { summarizeCertificateFile } from "../lib/identity/summary.ts";
import { assertExit, ztna } from "./support/cli.ts";
import { withTempDir } from "./support/temp_dir.ts";

/** The DER of the first certificate in a PEM file. */
async function certificateDer(path: string): Promise<Uint8Array> {
  return decodePem(CERTIFICATE_LABEL, await Deno.readTextFile(path));
}

/** The permission bits of a file. */
async function modeOf(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

/** Creates a CA in `<dir>/ca` with the CLI; returns its directory. */
async function initCa(dir: string, name = "Example Org"): Promise<string> {
  const caDir = `${dir}/ca`;
  assertExit(await ztna(["identity", "init-ca", "--dir", caDir, "--name", name]), 0);
  return caDir;
}

Deno.test("identity init-ca creates ca.crt and a 0600 ca.key, and says to keep the key offline", async () => {
  await withTempDir("ztna-cli-identity-", async (dir) => {
    const caDir = `${dir}/org/ca`;
    const run = await ztna(["identity", "init-ca", "--dir", caDir, "--name", "Example Org"]);
    assertExit(run, 0);
    assert.equal(run.stderr, "");
    assert.match(run.stdout, /^Created the CA "Example Org", valid until \d{4}-/);
    assert.ok(run.stdout.includes(`certificate  ${caDir}/ca.crt`), run.stdout);
    assert.ok(run.stdout.includes(`private key  ${caDir}/ca.key  (mode 0600)`), run.stdout);
    assert.match(run.stdout, /Keep ca\.key offline and never on the relay/);
    assert.ok(
      run.stdout.includes(`ztna identity issue --ca-dir ${caDir} --name relay --role relay`),
      run.stdout,
    );
    assert.equal(await modeOf(`${caDir}/ca.key`), 0o600);
    assert.equal(await modeOf(caDir), 0o700);
    const ca = await readIdentityFiles(`${caDir}/ca.crt`, `${caDir}/ca.key`);
    assert.equal(ca.certificate.subject, "CN=Example Org");
    assert.equal(ca.certificate.getExtension(x509.BasicConstraintsExtension)?.ca, true);
  });
});

Deno.test("identity init-ca refuses to overwrite an existing CA, exit 1, files untouched", async () => {
  await withTempDir("ztna-cli-identity-", async (dir) => {
    const caDir = await initCa(dir);
    const before = await Deno.readTextFile(`${caDir}/ca.key`);
    const run = await ztna(["identity", "init-ca", "--dir", caDir]);
    assertExit(run, 1);
    assert.equal(run.stdout, "");
    assert.equal(
      run.stderr.trimEnd(),
      `ztna identity: ${caDir}/ca.key already exists: refusing to overwrite a CA (every ` +
        "identity it issued would stop verifying); choose another directory or move the old CA away first",
    );
    assert.equal(await Deno.readTextFile(`${caDir}/ca.key`), before);

    // Only the certificate left behind is refused too.
    await Deno.remove(`${caDir}/ca.key`);
    const partial = await ztna(["identity", "init-ca", "--dir", caDir]);
    assertExit(partial, 1);
    assert.match(partial.stderr, /ca\.crt already exists: refusing to overwrite a CA/);
  });
});

Deno.test("identity issue for each role writes NAME.crt, a 0600 NAME.key and ca.crt with the grants", async () => {
  await withTempDir("ztna-cli-identity-", async (dir) => {
    const caDir = await initCa(dir);
    const caPem = await Deno.readTextFile(`${caDir}/ca.crt`);
    const caCert = new x509.X509Certificate(decodePem(CERTIFICATE_LABEL, caPem));
    const cases = [
      {
        args: [
          "--name",
          "relay-1",
          "--role",
          "relay",
          "--host",
          "relay.example.com",
          "--host",
          "Relay2.Example.com",
        ],
        name: "relay-1",
        role: "relay",
        services: [] as string[],
        hosts: ["relay.example.com", "relay2.example.com"],
        line:
          /^Issued relay "relay-1" \(hosts: relay\.example\.com, relay2\.example\.com\), valid until /,
      },
      {
        args: [
          "--name",
          "conn-1",
          "--role",
          "connector",
          "--service",
          "web",
          "--service",
          "db",
          "--service",
          "web",
        ],
        name: "conn-1",
        role: "connector",
        services: ["web", "db"],
        hosts: [],
        line: /^Issued connector "conn-1" \(services: web, db\), valid until /,
      },
      {
        args: ["--name", "alice", "--role", "agent", "--days", "30"],
        name: "alice",
        role: "agent",
        services: [],
        hosts: [],
        line: /^Issued agent "alice", valid until /,
      },
    ];
    for (const c of cases) {
      const out = `${dir}/${c.name}`;
      const run = await ztna(["identity", "issue", "--ca-dir", caDir, ...c.args, "--out", out]);
      assertExit(run, 0);
      assert.equal(run.stderr, "");
      assert.match(run.stdout, c.line);
      assert.ok(run.stdout.includes(`certificate  ${out}/${c.name}.crt`), run.stdout);
      assert.ok(run.stdout.includes(`private key  ${out}/${c.name}.key  (mode 0600)`), run.stdout);
      assert.ok(run.stdout.includes(`CA           ${out}/ca.crt`), run.stdout);

      assert.equal(await modeOf(`${out}/${c.name}.key`), 0o600);
      assert.equal(await Deno.readTextFile(`${out}/ca.crt`), caPem, "ca.crt is the CA's");
      const der = await certificateDer(`${out}/${c.name}.crt`);
      assert.deepEqual(readGrants(der), { name: c.name, role: c.role, services: c.services });
      const summary = await summarizeCertificateFile(`${out}/${c.name}.crt`);
      assert.deepEqual(summary.hosts, c.hosts);
      assert.equal(summary.issuer, "CN=Example Org");
      const identity = await readIdentityFiles(`${out}/${c.name}.crt`, `${out}/${c.name}.key`);
      assert.ok(
        await identity.certificate.verify({ publicKey: caCert.publicKey, signatureOnly: true }),
        "signed by the CA",
      );
      const san = identity.certificate.getExtension(x509.SubjectAlternativeNameExtension);
      const dns = san!.names.items.filter((n) => n.type === "dns").map((n) => n.value);
      assert.ok(dns.includes(`${c.name}.node.ztna`), `node name in ${dns}`);
    }
    const alice = await summarizeCertificateFile(`${dir}/alice/alice.crt`);
    const days = (Date.parse(alice.notAfter) - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days <= 30, `--days 30 gave ${days} days`);

    // Issuing into the CA directory itself reuses its ca.crt (same CA) and leaves it alone.
    const inCaDir = await ztna([
      "identity",
      "issue",
      "--ca-dir",
      caDir,
      "--name",
      "bob",
      "--role",
      "agent",
      "--out",
      caDir,
    ]);
    assertExit(inCaDir, 0);
    assert.equal(await Deno.readTextFile(`${caDir}/ca.crt`), caPem);
  });
});

Deno.test("identity issue refuses to overwrite an identity or mix CAs, exit 1", async () => {
  await withTempDir("ztna-cli-identity-", async (dir) => {
    const caDir = await initCa(dir);
    const out = `${dir}/alice`;
    const args = ["identity", "issue", "--ca-dir", caDir, "--name", "alice", "--role", "agent"];
    assertExit(await ztna([...args, "--out", out]), 0);
    const key = await Deno.readTextFile(`${out}/alice.key`);
    const again = await ztna([...args, "--out", out]);
    assertExit(again, 1);
    assert.equal(
      again.stderr.trimEnd(),
      `ztna identity: cannot write identity "alice" to ${out}: refusing to overwrite existing ${out}/alice.crt`,
    );
    assert.equal(await Deno.readTextFile(`${out}/alice.key`), key);

    // Another CA's identity into the same directory: its ca.crt would be replaced; refused.
    const otherCa = `${dir}/other-ca`;
    assertExit(await ztna(["identity", "init-ca", "--dir", otherCa]), 0);
    const mixed = await ztna([
      "identity",
      "issue",
      "--ca-dir",
      otherCa,
      "--name",
      "bob",
      "--role",
      "agent",
      "--out",
      out,
    ]);
    assertExit(mixed, 1);
    assert.equal(
      mixed.stderr.trimEnd(),
      `ztna identity: ${out}/ca.crt already exists and is another CA's certificate`,
    );
    await assert.rejects(Deno.stat(`${out}/bob.crt`), Deno.errors.NotFound);

    const noCa = await ztna([...args, "--ca-dir", `${dir}/nowhere`, "--out", `${dir}/x`]);
    assertExit(noCa, 1);
    assert.match(
      noCa.stderr,
      /no CA private key .*nowhere\/ca\.key: create a CA with 'ztna identity init-ca/,
    );
  });
});

Deno.test("identity usage errors name the problem, exit 2, and write nothing", async () => {
  await withTempDir("ztna-cli-identity-", async (dir) => {
    const caDir = await initCa(dir);
    const out = `${dir}/out`;
    const issue = (
      ...args: string[]
    ) => ["identity", "issue", "--ca-dir", caDir, "--out", out, ...args];
    const cases: [string[], string][] = [
      [
        issue("--name", "x", "--role", "admin"),
        "invalid role 'admin': expected relay, connector, agent",
      ],
      [
        issue("--name", "alice", "--role", "agent", "--service", "web"),
        "--service is for connectors only (an agent publishes no service)",
      ],
      [
        issue("--name", "r", "--role", "relay", "--service", "web", "--host", "r.example"),
        "--service is for connectors only (a relay publishes no service)",
      ],
      [
        issue("--name", "r", "--role", "relay"),
        "a relay needs at least one --host: the DNS name nodes dial it by and verify it against",
      ],
      [
        issue("--name", "c", "--role", "connector", "--service", "web", "--host", "c.example"),
        "--host is for relays only (nobody dials a connector by host name)",
      ],
      [
        issue("--name", "c", "--role", "connector"),
        "a connector needs at least one --service (the services it may publish)",
      ],
      [
        issue("--name", "c", "--role", "connector", "--service", "Web_1"),
        "invalid service 'Web_1': expected a DNS label: 1-63 lowercase letters, digits and inner hyphens",
      ],
      [
        issue("--name", "Alice Smith", "--role", "agent"),
        "invalid name 'Alice Smith': expected a DNS label: 1-63 lowercase letters, digits and inner hyphens",
      ],
      [
        issue("--name", "ca", "--role", "agent"),
        "invalid name 'ca': reserved (ca.crt is the trust anchor's file)",
      ],
      [
        issue("--name", "r", "--role", "relay", "--host", "192.0.2.1"),
        "invalid host '192.0.2.1': an IP address; give the DNS name nodes dial the relay by",
      ],
      [
        issue("--name", "r", "--role", "relay", "--host", "bad_host.example"),
        "invalid host 'bad_host.example': expected a DNS name of labels (letters, digits, inner hyphens)",
      ],
      [issue("--role", "agent"), "missing required option --name"],
      [issue("--name", "a"), "missing required option --role"],
      [
        issue("--name", "a", "--role", "agent", "--days", "0"),
        "invalid --days '0': expected an integer 1-36500",
      ],
      [
        ["identity", "issue", "--name", "a", "--role", "agent", "--out", out],
        "missing required option --ca-dir",
      ],
      [["identity", "init-ca"], "missing required option --dir"],
      [
        ["identity", "init-ca", "--dir", `${dir}/ca2`, "--role", "agent"],
        "option '--role' does not apply to 'init-ca'",
      ],
      [["identity", "show"], "missing the certificate file to show"],
      [["identity", "show", "a.crt", "b.crt"], "unexpected argument 'b.crt'"],
      [["identity"], "missing what to do (init-ca, issue, show)"],
      [["identity", "revoke"], "unknown action 'revoke' (init-ca, issue, show)"],
    ];
    for (const [args, message] of cases) {
      const run = await ztna(args);
      assertExit(run, 2);
      assert.equal(run.stdout, "");
      assert.equal(
        run.stderr,
        `ztna identity: ${message}\nRun 'ztna identity --help' for usage.\n`,
        args.join(" "),
      );
    }
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(`${dir}/ca2`), Deno.errors.NotFound);
  });
});

Deno.test("identity show prints name, role, services, hosts, validity and issuer", async () => {
  await withTempDir("ztna-cli-identity-", async (dir) => {
    const caDir = await initCa(dir, "Example Org");
    const issue = (...args: string[]) => ztna(["identity", "issue", "--ca-dir", caDir, ...args]);
    assertExit(
      await issue(
        "--name",
        "conn-1",
        "--role",
        "connector",
        "--service",
        "web",
        "--service",
        "db",
        "--out",
        `${dir}/c`,
      ),
      0,
    );
    assertExit(
      await issue(
        "--name",
        "relay-1",
        "--role",
        "relay",
        "--host",
        "relay.example.com",
        "--out",
        `${dir}/r`,
      ),
      0,
    );

    const connector = await ztna(["identity", "show", `${dir}/c/conn-1.crt`]);
    assertExit(connector, 0);
    const out = connector.stdout;
    assert.match(out, /^name {6}conn-1$/m);
    assert.match(out, /^role {6}connector$/m);
    assert.match(out, /^services {2}web, db$/m);
    assert.doesNotMatch(out, /^hosts/m);
    assert.match(out, /^valid {5}\S+ to \S+ \(expires in 36[45] days\)$/m);
    assert.match(out, /^issuer {4}CN=Example Org$/m);
    assert.match(out, /^sha256 {4}([0-9A-F]{2}:){31}[0-9A-F]{2}$/m);

    const relay = await ztna(["identity", "show", `${dir}/r/relay-1.crt`]);
    assertExit(relay, 0);
    assert.match(relay.stdout, /^role {6}relay$/m);
    assert.match(relay.stdout, /^hosts {5}relay\.example\.com$/m);

    const ca = await ztna(["identity", "show", `${caDir}/ca.crt`]);
    assertExit(ca, 0);
    assert.match(ca.stdout, /^role {6}none \(CA certificate: signs identities\)$/m);

    const json = await ztna(["identity", "show", "--json", `${dir}/c/conn-1.crt`]);
    assertExit(json, 0);
    const summary = JSON.parse(json.stdout);
    assert.equal(summary.name, "conn-1");
    assert.equal(summary.role, "connector");
    assert.deepEqual(summary.services, ["web", "db"]);
    assert.equal(summary.isCa, false);
    assert.equal(summary.issuer, "CN=Example Org");

    const key = await ztna(["identity", "show", `${dir}/c/conn-1.key`]);
    assertExit(key, 1);
    assert.equal(
      key.stderr.trimEnd(),
      `ztna identity: cannot read a certificate from ${dir}/c/conn-1.key: ` +
        `expected a PEM block "CERTIFICATE", found "PRIVATE KEY"`,
    );
  });
});

Deno.test("identity --help prints the usage of every action, exit 0", async () => {
  const run = await ztna(["identity", "--help"]);
  assertExit(run, 0);
  assert.match(run.stdout, /^Usage: ztna identity init-ca --dir DIR/);
  assert.match(run.stdout, /ztna identity issue --ca-dir DIR --name NAME --role ROLE/);
  assert.match(run.stdout, /ztna identity show FILE\.crt/);
  assert.match(run.stdout, /--log-level LEVEL/);
});
