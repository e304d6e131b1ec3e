/**
 * Certificate expiry: read from the file on demand, parsed again when the file
 * changes; a certificate ending within 30 days is warned about, one valid for
 * a year is not; a real relay with a 10-day certificate logs the warning at
 * start and shows the expiry in `ztna status` (text and JSON).
 */
import assert from "node:assert/strict";
import { CertificateExpiry } from "../lib/pki/expiry.ts";
import { assertExit, MAIN, ztna } from "./support/cli.ts";
import { Daemon } from "./support/metrics.ts";
import { makeTestOrg, nodeIdentity } from "./support/nodes.ts";

const DAY_MS = 86_400_000;

/** A date `days` (and an hour) from now, whole seconds (what a certificate can hold). */
function daysFromNow(days: number): Date {
  return new Date(Math.floor((Date.now() + days * DAY_MS + 3_600_000) / 1000) * 1000);
}

Deno.test("expiry: 10 days left is warned about, a year is not; a replaced file shows its new date", async () => {
  const org = await makeTestOrg("expiry");
  try {
    const soon = daysFromNow(10);
    const year = daysFromNow(365);
    const short = await org.issue("short", "agent", [], soon);
    const long = await org.issue("long", "agent", [], year);
    const expiry = new CertificateExpiry(short.certPath);
    assert.equal(expiry.notAfter().getTime(), soon.getTime());
    assert.deepEqual(expiry.status(), {
      file: short.certPath,
      notAfter: soon.toISOString(),
      daysLeft: 10,
    });
    assert.equal(
      expiry.warning(),
      `the certificate ${short.certPath} expires in 10 days, at ${soon.toISOString()}: renew it`,
    );
    assert.equal(
      expiry.warning(soon.getTime() + 1000),
      `the certificate ${short.certPath} expired at ${soon.toISOString()}: renew it`,
    );
    assert.equal(new CertificateExpiry(long.certPath).warning(), null);
    assert.equal(new CertificateExpiry(long.certPath).status().daysLeft, 365);

    // A renewed certificate written over the old one: its new date, no other wiring.
    await Deno.copyFile(long.certPath, short.certPath);
    assert.equal(expiry.notAfter().getTime(), year.getTime());
    assert.equal(expiry.warning(), null);

    // A file that went away: the status says why, the warning too.
    await Deno.remove(short.certPath);
    const gone = expiry.status();
    assert.equal(gone.notAfter, null);
    assert.match(gone.error!, new RegExp(`^cannot read the certificate ${short.certPath}: `));
    assert.equal(expiry.warning(), gone.error);
  } finally {
    await org.cleanup();
  }
});

Deno.test("expiry: a relay with a 10-day certificate warns at start and shows it in ztna status", async () => {
  const org = await makeTestOrg("expiry-relay");
  const soon = daysFromNow(10);
  const relayId = await nodeIdentity(org, "relay-1", "relay", [], soon);
  const socket = `${org.dir}/relay.sock`;
  const relay = new Daemon(Deno.execPath(), [
    ...["run", "--allow-all", "--unstable-net", MAIN, "relay", "--listen", "127.0.0.1:0"],
    ...["--no-stun", "--admin-socket", socket, "--cert", relayId.certificateFile],
    ...["--key", relayId.privateKeyFile, "--ca", relayId.caFile],
  ]);
  try {
    await relay.waitFor(/listening on/);
    const warning = await relay.waitFor(/WRN.*the certificate .*/);
    assert.match(
      warning[0],
      new RegExp(
        `the certificate ${relayId.certificateFile} expires in 10 days, at ${soon.toISOString()}: renew it$`,
      ),
    );
    const json = await ztna(["status", "--socket", socket, "--json"]);
    assertExit(json, 0);
    assert.deepEqual(JSON.parse(json.stdout).certificate, {
      file: relayId.certificateFile,
      notAfter: soon.toISOString(),
      daysLeft: 10,
    });
    const text = await ztna(["status", "--socket", socket]);
    assertExit(text, 0);
    assert.equal(
      text.stdout.split("\n")[1],
      `certificate ${relayId.certificateFile} expires in 10 days, at ${soon.toISOString()}: renew it`,
    );
  } finally {
    await relay.stop();
    await org.cleanup();
  }
});
