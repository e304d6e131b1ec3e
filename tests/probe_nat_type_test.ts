/**
 * `ztna probe nat-type` and the relay's STUN service, as operators run them (real `ztna`
 * processes), in the NAT lab and on loopback. In the lab, each NAT kind (none, full cone,
 * restricted cone, port-restricted cone, symmetric, double NAT, bare MASQUERADE) is classified
 * by the probe against a `ztna relay` with an alternate address and port; coturn is the
 * referee: its client (`turnutils_natdiscovery`) against coturn's own STUN server
 * (`turnserver`, only STUN, on the relay host's two addresses) must report the same mapping
 * and filtering as its client against the ztna relay and as the probe against coturn. The
 * probe against a relay without alternates says what it could not determine; against
 * `--no-stun` it gets no answer and exits 1. On loopback: usage errors and the relay's flags.
 * Needs root, iptables, conntrack and coturn (.ci/run installs them).
 */
import assert from "node:assert/strict";
import { formatAddress } from "../lib/net/address.ts";
import type { NatCheckResult } from "../lib/natcheck/mod.ts";
import {
  createNatLab,
  denoCommand,
  flushConntrack,
  type NatKind,
  type NatLab,
  type Site,
} from "../lib/netns/mod.ts";
import { spawnChild } from "../lib/netns/child.ts";
import type { NatBehavior } from "../lib/stun/mod.ts";
import { assertExit, MAIN, ztna } from "./support/cli.ts";
import { makeTestOrg, type TestOrg } from "./support/nodes.ts";

/** The RFC 4787 behaviours, short. */
const EIM = "endpoint-independent";
const AD = "address-dependent";
const APD = "address-and-port-dependent";

/** What a classification came to, for comparing across clients and servers. */
interface Verdict {
  /** "no NAT" or the mapping behaviour. */
  mapping: string;
  filtering: string;
}

/** A lab site and what the probe must report for it. */
interface SiteCase {
  label: string;
  kind: NatKind;
  /** Adds hairpinning to the router (DNAT and SNAT of LAN traffic to its public address). */
  hairpin?: boolean;
  classic: string;
  verdict: Verdict;
  /** Undefined without a NAT: there is nothing to hairpin. */
  hairpinning: boolean | undefined;
}

function siteCase(
  kind: NatKind,
  classic: string,
  mapping: string,
  filtering: string,
  hairpinning = false,
  label: string = kind,
): SiteCase {
  return {
    label,
    kind,
    hairpin: hairpinning === true,
    classic,
    verdict: { mapping, filtering },
    hairpinning,
  };
}

const CASES: SiteCase[] = [
  { ...siteCase("none", "open", "no NAT", EIM), hairpinning: undefined },
  siteCase("full-cone", "full cone", EIM, EIM),
  siteCase("restricted-cone", "restricted cone", EIM, AD),
  siteCase("port-restricted-cone", "port-restricted cone", EIM, APD),
  siteCase("symmetric", "symmetric", APD, APD),
  // The home router is port-restricted behind a port-restricted carrier router.
  siteCase("double", "port-restricted cone", EIM, APD),
  siteCase("bare-masquerade", "port-restricted cone", EIM, APD),
  siteCase(
    "port-restricted-cone",
    "port-restricted cone",
    EIM,
    APD,
    true,
    "port-restricted + hairpin",
  ),
];
const PORT_RESTRICTED = CASES.findIndex((c) => c.label === "port-restricted-cone");

const RELAY_PORT = 4433;
const RELAY_ALT_PORT = 4434;
/** A second relay without alternates, and a third with STUN off. */
const PLAIN_RELAY_PORT = 5433;
const NO_STUN_RELAY_PORT = 6433;
const COTURN_PORT = 3478;
const COTURN_ALT_PORT = 3479;

/** coturn as a STUN-only RFC 5780 server on the relay host's two addresses. */
function coturnConfig(lab: NatLab, dir: string): string {
  return [
    `listening-ip=${lab.relayAddress}`,
    `listening-ip=${lab.relayAltAddress}`,
    `listening-port=${COTURN_PORT}`,
    `alt-listening-port=${COTURN_ALT_PORT}`,
    "stun-only",
    "no-tcp",
    "no-tls",
    "no-dtls",
    "no-cli",
    "no-stdout-log",
    "simple-log",
    `log-file=${dir}/turnserver.log`,
    `pidfile=${dir}/turnserver.pid`,
    `userdb=${dir}/turndb`,
    "",
  ].join("\n");
}

/** Waits until `addresses` (HOST:PORT) all have a UDP listener in the relay host. */
async function untilListening(lab: NatLab, addresses: string[], what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { stdout } = await lab.net.exec(lab.relay, ["ss", "-Hnlu"]);
    if (addresses.every((address) => stdout.includes(` ${address} `))) return;
    if (Date.now() > deadline) {
      throw new Error(`${what} is not listening on ${addresses}: ${stdout}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Starts `ztna relay` in the relay host with `flags`; resolves once it listens. */
async function startRelay(lab: NatLab, org: TestOrg, port: number, flags: string[]): Promise<void> {
  const id = await org.issue(`relay-${port}`, "relay");
  const child = lab.net.spawn(
    lab.relay,
    denoCommand(MAIN, [
      "relay",
      ...["--listen", `${lab.relayAddress}:${port}`, ...flags],
      ...["--cert", id.certPath, "--key", id.keyPath, "--ca", org.caPath, "--log-format", "json"],
    ]),
    { stderr: "capture" },
  );
  await child.stderr!.waitFor(/"listening on /, 30_000);
}

/**
 * Forgets the site's NAT state, as a router reboot would: conntrack on every router, and the
 * restricted cone's list of admitted addresses. The lab's restricted cone admits an address
 * once any host of the site has sent to it (xt_recent by destination IP), for good; a real
 * one filters per internal endpoint. Without this, one client's mapping test (which contacts
 * the alternate address) would open the filter for every later filtering test.
 */
async function resetNat(lab: NatLab, site: Site): Promise<void> {
  await flushConntrack(lab, site);
  if (site.kind === "restricted-cone") {
    const result = await lab.net.exec(site.router!, [
      "sh",
      "-c",
      `echo / > /proc/net/xt_recent/ztna-${site.name}`,
    ]);
    assert.equal(result.code, 0, result.stderr);
  }
}

const NATDISCOVERY_BEHAVIOURS: Record<string, NatBehavior> = {
  "Endpoint Independent": EIM,
  "Address Dependent": AD,
  "Address and Port Dependent": APD,
};

/** coturn's client's verdict from its output. */
function natdiscoveryVerdict(mappingOutput: string, filteringOutput: string): Verdict {
  const find = (output: string, part: string) => {
    const match = new RegExp(`NAT with (.+) ${part}!`).exec(output);
    return match ? NATDISCOVERY_BEHAVIOURS[match[1]] ?? match[1] : `none in: ${output}`;
  };
  return {
    mapping: /No NAT!/.test(mappingOutput) ? "no NAT" : find(mappingOutput, "Mapping"),
    filtering: find(filteringOutput, "Filtering"),
  };
}

/** The probe's verdict from its JSON result. */
function probeVerdict(result: NatCheckResult): Verdict {
  const c = result.classification;
  return {
    mapping: c.behindNat === false ? "no NAT" : c.mapping.behavior,
    filtering: c.filtering.behavior,
  };
}

/**
 * Makes the site's router hairpin: UDP from the LAN to its public address goes to the first
 * host, its source rewritten to the public address (as a hairpinning NAT does).
 */
async function addHairpinning(lab: NatLab, site: Site): Promise<void> {
  const lan = `${site.hostAddresses[0].split(".").slice(0, 3).join(".")}.0/24`;
  for (
    const rule of [
      ["PREROUTING", "-i", "lan", "-d", site.publicAddress, "-p", "udp"],
      ["POSTROUTING", "-o", "lan", "-s", lan, "-d", site.hostAddresses[0], "-p", "udp"],
    ]
  ) {
    const target = rule[0] === "PREROUTING"
      ? ["-j", "DNAT", "--to-destination", site.hostAddresses[0]]
      : ["-j", "SNAT", "--to-source", site.publicAddress];
    const result = await lab.net.exec(site.router!, [
      "iptables",
      "-t",
      "nat",
      "-I",
      ...rule,
      ...target,
    ]);
    assert.equal(result.code, 0, result.stderr);
  }
}

/** coturn's client's hairpinning test: does a request to our own public address come back? */
async function natdiscoveryHairpinning(lab: NatLab, site: Site): Promise<boolean> {
  const result = await lab.net.exec(site.hosts[0], [
    "turnutils_natdiscovery",
    "-H",
    ...["-L", site.hostAddresses[0], "-p", String(COTURN_PORT), lab.relayAddress],
  ], { timeoutMs: 20_000 });
  assert.equal(result.code, 0, `natdiscovery -H: ${result.stderr}`);
  return /Received a request \(maybe a successful hairpinning\)/.test(result.stdout);
}

/** Runs coturn's client from the site's host: filtering first (see resetNat), then mapping. */
async function natdiscovery(lab: NatLab, site: Site, port: number): Promise<Verdict> {
  const run = async (flag: string) => {
    const result = await lab.net.exec(site.hosts[0], [
      "turnutils_natdiscovery",
      flag,
      ...["-L", site.hostAddresses[0], "-p", String(port), lab.relayAddress],
    ], { timeoutMs: 20_000 });
    assert.equal(result.code, 0, `natdiscovery ${flag}: ${result.stderr}`);
    return result.stdout;
  };
  const filtering = await run("-f");
  const mapping = await run("-m");
  return natdiscoveryVerdict(mapping, filtering);
}

/** Runs `ztna probe nat-type --json` from the site's host. */
async function probe(lab: NatLab, site: Site, port: number): Promise<NatCheckResult> {
  const result = await lab.net.exec(
    site.hosts[0],
    denoCommand(MAIN, ["probe", "nat-type", "--relay", `${lab.relayAddress}:${port}`, "--json"]),
    { timeoutMs: 30_000 },
  );
  assert.equal(result.code, 0, `probe of ${port} from ${site.kind}: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

/** What one site's runs found. */
interface SiteRuns {
  probeVsRelay: NatCheckResult;
  probeVsCoturn: NatCheckResult;
  coturnVsCoturn: Verdict;
  coturnVsRelay: Verdict;
  /** coturn's client's hairpinning verdict (against coturn). */
  coturnHairpinning: boolean;
  /** The text report against the relay, for the docs' sample. */
  text: string;
}

/** Every client against every server from one site, each from a fresh NAT state. */
async function runSite(lab: NatLab, site: Site): Promise<SiteRuns> {
  await resetNat(lab, site);
  const coturnVsCoturn = await natdiscovery(lab, site, COTURN_PORT);
  await resetNat(lab, site);
  const coturnVsRelay = await natdiscovery(lab, site, RELAY_PORT);
  await resetNat(lab, site);
  const probeVsCoturn = await probe(lab, site, COTURN_PORT);
  await resetNat(lab, site);
  const probeVsRelay = await probe(lab, site, RELAY_PORT);
  await resetNat(lab, site);
  const coturnHairpinning = await natdiscoveryHairpinning(lab, site);
  await resetNat(lab, site);
  const text = await lab.net.exec(
    site.hosts[0],
    denoCommand(MAIN, ["probe", "nat-type", "--relay", `${lab.relayAddress}:${RELAY_PORT}`]),
    { timeoutMs: 30_000 },
  );
  assert.equal(text.code, 0, text.stderr);
  return {
    probeVsRelay,
    probeVsCoturn,
    coturnVsCoturn,
    coturnVsRelay,
    coturnHairpinning,
    text: text.stdout,
  };
}

Deno.test("probe nat-type: every lab NAT classified against the ztna relay; coturn's client and server agree", async () => {
  const lab = await createNatLab("ztnnt", CASES.map(({ kind }) => ({ kind })));
  const org = await makeTestOrg("nat-type");
  const dir = await Deno.makeTempDir({ prefix: "ztna-coturn-" });
  try {
    await Deno.writeTextFile(`${dir}/turnserver.conf`, coturnConfig(lab, dir));
    lab.net.spawn(lab.relay, ["turnserver", "-c", `${dir}/turnserver.conf`]);
    await Promise.all([
      startRelay(lab, org, RELAY_PORT, [
        ...["--alt-address", lab.relayAltAddress, "--alt-port", String(RELAY_ALT_PORT)],
      ]),
      startRelay(lab, org, PLAIN_RELAY_PORT, []),
      startRelay(lab, org, NO_STUN_RELAY_PORT, ["--no-stun"]),
    ]);
    const ips = [lab.relayAddress, lab.relayAltAddress];
    await untilListening(
      lab,
      ips.flatMap((ip) => [COTURN_PORT, COTURN_ALT_PORT].map((port) => `${ip}:${port}`)),
      "coturn",
    );
    await untilListening(
      lab,
      ips.flatMap((ip) => [RELAY_PORT, RELAY_ALT_PORT].map((port) => `${ip}:${port}`)),
      "the ztna relay's STUN",
    );

    for (const [i, c] of CASES.entries()) if (c.hairpin) await addHairpinning(lab, lab.sites[i]);
    const runs = await Promise.all(lab.sites.map((site) => runSite(lab, site)));
    const table: Record<string, Record<string, string>> = {};
    const observed: Record<string, unknown> = {};
    const expected: Record<string, unknown> = {};
    for (const [i, site] of lab.sites.entries()) {
      const run = runs[i];
      const want = CASES[i];
      const c = run.probeVsRelay.classification;
      const show = (v: Verdict) => `${v.mapping} / ${v.filtering}`;
      table[want.label] = {
        "probe vs relay": `${c.classic}: ${show(probeVerdict(run.probeVsRelay))}`,
        "probe vs coturn": show(probeVerdict(run.probeVsCoturn)),
        "coturn client vs coturn": show(run.coturnVsCoturn),
        "coturn client vs relay": show(run.coturnVsRelay),
        "hairpin (probe, coturn)": `${c.hairpinning ?? "n/a"}, ${run.coturnHairpinning}`,
        "public": run.probeVsRelay.publicAddresses.map(formatAddress).join(" "),
        "ms": String(run.probeVsRelay.durationMs),
      };
      observed[want.label] = {
        classic: c.classic,
        verdict: probeVerdict(run.probeVsRelay),
        hairpinning: c.hairpinning,
        probeVsCoturn: probeVerdict(run.probeVsCoturn),
        coturnVsRelay: run.coturnVsRelay,
        coturnVsCoturn: run.coturnVsCoturn,
        // Without a NAT coturn's client hears its own request come back directly.
        coturnHairpinning: run.coturnHairpinning,
        publicIp: run.probeVsRelay.publicAddresses[0].hostname,
      };
      expected[want.label] = {
        classic: want.classic,
        verdict: want.verdict,
        hairpinning: want.hairpinning,
        probeVsCoturn: want.verdict,
        coturnVsRelay: want.verdict,
        coturnVsCoturn: want.verdict,
        coturnHairpinning: want.hairpinning ?? true,
        publicIp: site.publicAddress,
      };
    }
    console.table(table);
    console.log(runs[PORT_RESTRICTED].text);
    assert.deepEqual(observed, expected);
    for (const [i, site] of lab.sites.entries()) {
      const result = runs[i].probeVsRelay;
      // A symmetric NAT shows a new public port per destination; the others one address.
      assert.equal(result.publicAddresses.length, site.kind === "symmetric" ? 3 : 1, site.kind);
      assert.ok(result.durationMs < 2_000, `${site.kind}: ${result.durationMs} ms`);
      assert.match(runs[i].text, new RegExp(`^NAT type: ${CASES[i].classic}`));
    }

    // A relay without alternates: test I only; the probe says what it could not determine.
    const site = lab.sites[PORT_RESTRICTED];
    await resetNat(lab, site);
    const plain = await probe(lab, site, PLAIN_RELAY_PORT);
    assert.equal(plain.classification.classic, "unknown");
    assert.equal(plain.classification.behindNat, true);
    assert.deepEqual(plain.tests.map((t) => t.test), ["testI", "hairpinning"]);
    for (const part of [plain.classification.mapping, plain.classification.filtering]) {
      assert.ok(part.behavior === "undetermined");
      assert.match(part.reason, /the server has no alternate address/);
    }
    const text = await lab.net.exec(
      site.hosts[0],
      denoCommand(MAIN, [
        "probe",
        "nat-type",
        "--relay",
        `${lab.relayAddress}:${PLAIN_RELAY_PORT}`,
      ]),
    );
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^NAT type: unknown/);
    assert.match(
      text.stdout,
      /^ {2}mapping {7}undetermined \(endpoint-independent or address-dependent or address-and-port-dependent\): the server has no alternate address/m,
    );
    console.log(text.stdout);

    // --no-stun: nothing answers; exit 1 with a clear message.
    const silent = await lab.net.exec(
      site.hosts[0],
      denoCommand(MAIN, [
        ...["probe", "nat-type", "--relay", `${lab.relayAddress}:${NO_STUN_RELAY_PORT}`],
        ...["--timeout-ms", "1000"],
      ]),
    );
    assert.equal(silent.code, 1, silent.stdout);
    assert.equal(silent.stdout, "");
    assert.match(
      silent.stderr,
      new RegExp(
        `^ztna probe: no STUN answer from ${lab.relayAddress}:${NO_STUN_RELAY_PORT} within 1000 ms ` +
          "\\(3 Binding requests sent\\): is the relay running there with STUN on \\(not --no-stun\\)",
      ),
    );
  } finally {
    await lab.net.destroy();
    await org.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("probe nat-type: usage errors, exit 2; --help shows the nat-type options", async () => {
  const cases: [string[], RegExp][] = [
    [["probe", "nat-type"], /missing required option --relay/],
    [["probe", "nat-type", "--relay", "nowhere"], /invalid --relay: invalid address "nowhere"/],
    [["probe", "nat-type", "--relay", "127.0.0.1:0"], /invalid --relay: port 0/],
    [["probe", "nat-type", "--relay", "127.0.0.1:1", "extra"], /unexpected argument 'extra'/],
    [
      ["probe", "nat-type", "--relay", "127.0.0.1:1", "--timeout-ms", "0"],
      /invalid --timeout-ms '0'/,
    ],
    [
      ["probe", "nat-type", "--relay", "127.0.0.1:1", "--server-name", "x"],
      /unknown option '--server-name'/,
    ],
  ];
  for (const [args, message] of cases) {
    const run = await ztna(args);
    assertExit(run, 2);
    assert.match(run.stderr, /^ztna probe: /);
    assert.match(run.stderr, message);
  }
  const help = await ztna(["probe", "nat-type", "--help"]);
  assertExit(help, 0);
  assert.match(help.stdout, /^Usage: ztna probe nat-type --relay HOST:PORT /m);
  assert.match(help.stdout, /--relay HOST:PORT {4}the relay \(or STUN server\)/);
});

Deno.test("relay STUN flags: contradictions and a wildcard with alternates are usage errors, exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--listen", "0.0.0.0:4433", "--alt-port", "4434"],
      /--alt-port and --alt-address need a specific --listen address, not 0\.0\.0\.0:4433/,
    ],
    [
      ["--listen", "127.0.0.1:4433", "--no-stun", "--alt-port", "4434"],
      /--alt-port and --no-stun contradict/,
    ],
    [["--listen", "127.0.0.1:4433", "--alt-address", "nowhere"], /invalid --alt-address 'nowhere'/],
    [["--listen", "127.0.0.1:4433", "--alt-port", "70000"], /invalid --alt-port '70000'/],
  ];
  for (const [args, message] of cases) {
    const run = await ztna(["relay", ...args, "--cert", "c", "--key", "k", "--ca", "a"]);
    assertExit(run, 2);
    assert.match(run.stderr, /^ztna relay: /);
    assert.match(run.stderr, message);
  }
});

Deno.test("relay on loopback: STUN answers on the QUIC port and the alternates; the probe classifies 'open'", async () => {
  const org = await makeTestOrg("nat-type-cli");
  try {
    const id = await org.issue("relay-1", "relay");
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const relay = spawnChild(Deno.execPath(), [
      ...["run", "--allow-all", "--unstable-net", MAIN, "relay", "--listen", `127.0.0.1:${port}`],
      ...["--alt-address", "127.0.0.2", "--alt-port", String(port + 1)],
      ...["--cert", id.certPath, "--key", id.keyPath, "--ca", org.caPath, "--log-format", "json"],
    ], { stderr: "capture" });
    try {
      const line = await relay.stderr!.waitFor(/"STUN on /, 30_000);
      assert.equal(
        JSON.parse(line).properties.addresses,
        [`127.0.0.1:${port}`, `127.0.0.1:${port + 1}`, `127.0.0.2:${port}`, `127.0.0.2:${port + 1}`]
          .join(", "),
      );
      await relay.stderr!.waitFor(/"listening on /, 10_000);
      const run = await ztna(["probe", "nat-type", "--relay", `127.0.0.1:${port}`]);
      assertExit(run, 0);
      assert.match(run.stdout, /^NAT type: open \(no NAT\)$/m);
      assert.match(run.stdout, /^ {2}mapping {7}endpoint-independent$/m);
      assert.match(run.stdout, /^ {2}filtering {5}endpoint-independent$/m);
      assert.match(
        run.stdout,
        new RegExp(
          `^ {2}server {8}127\\.0\\.0\\.1:${port} \\(alternate 127\\.0\\.0\\.2:${port + 1}\\)$`,
          "m",
        ),
      );
      assert.match(
        run.stdout,
        /^ {4}filtering test II \(change IP and port\): answer from 127\.0\.0\.2:\d+$/m,
      );
      const json = await ztna([
        ...["probe", "nat-type", "--relay", `127.0.0.1:${port}`, "--bind", "127.0.0.1:0"],
        "--json",
      ]);
      assertExit(json, 0);
      const result: NatCheckResult = JSON.parse(json.stdout);
      assert.equal(result.localAddresses.length, 1);
      assert.equal(result.localAddresses[0].hostname, "127.0.0.1");
      assert.deepEqual(result.publicAddresses, result.localAddresses);
      assert.deepEqual(result.otherAddress, { hostname: "127.0.0.2", port: port + 1 });
    } finally {
      await relay.stop();
    }
  } finally {
    await org.cleanup();
  }
});
