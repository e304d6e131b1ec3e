/**
 * lib/pki is checked against implementations it does not share code with: node:crypto's
 * X509Certificate/createPrivateKey, the openssl CLI (when installed) and a rustls TLS handshake.
 */
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import {
  createCa,
  type Identity,
  issueIdentity,
  loadIdentity,
  readIdentityFiles,
  writeIdentityFiles,
} from "../lib/pki/mod.ts";
// Used to read extensions; lib/pki has already loaded reflect-metadata, which @peculiar/x509 needs.
import * as x509 from "@peculiar/x509";
import { withTempDir } from "./support/temp_dir.ts";

const OPENSSL = "/usr/bin/openssl";
const hasOpenssl = await Deno.stat(OPENSSL).then(() => true, () => false);
const DAY_MS = 24 * 60 * 60 * 1000;

const ca = await createCa({ commonName: "ztna test CA" });
const otherCa = await createCa({ commonName: "ztna other CA" });
const relay = await issueIdentity(ca, {
  commonName: "relay-1",
  dnsNames: ["relay.ztna.test", "localhost"],
});

function nodeCert(identity: Identity): X509Certificate {
  return new X509Certificate(identity.certificatePem);
}

function spki(key: ReturnType<typeof createPublicKey>): string {
  return key.export({ type: "spki", format: "der" }).toString("hex");
}

/** Runs openssl and returns whether it exited 0, with its combined output for messages. */
async function openssl(...args: string[]): Promise<{ ok: boolean; output: string }> {
  const { success, stdout, stderr } = await new Deno.Command(OPENSSL, { args }).output();
  const decoder = new TextDecoder();
  return { ok: success, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

Deno.test("createCa: self-signed CA with PKCS#8 key, checked by node:crypto", () => {
  const cert = nodeCert(ca);
  assert.equal(cert.ca, true);
  assert.equal(cert.verify(cert.publicKey), true);
  assert.match(cert.subject, /CN=ztna test CA/);
  assert.equal(cert.subject, cert.issuer);
  assert.match(
    ca.certificatePem,
    /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/,
  );
  assert.match(
    ca.privateKeyPem,
    /^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/,
  );
  const key = createPrivateKey(ca.privateKeyPem);
  assert.equal(key.asymmetricKeyType, "ec");
  assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
  assert.equal(cert.checkPrivateKey(key), true);
  assert.equal(spki(createPublicKey(key)), spki(cert.publicKey));
});

Deno.test("createCa: default validity is now-5min .. now+10y", () => {
  const cert = nodeCert(ca);
  const now = Date.now();
  assert.ok(Math.abs(cert.validFromDate.getTime() - (now - 5 * 60_000)) < 60_000);
  const tenYears = new Date(now);
  tenYears.setUTCFullYear(tenYears.getUTCFullYear() + 10);
  assert.ok(Math.abs(cert.validToDate.getTime() - tenYears.getTime()) < DAY_MS);
});

Deno.test("createCa: CA extensions are critical basicConstraints pathLen 0 and keyCertSign|cRLSign", () => {
  const parsed = new x509.X509Certificate(ca.certificatePem);
  const constraints = parsed.getExtension(x509.BasicConstraintsExtension);
  assert.ok(constraints);
  assert.equal(constraints.critical, true);
  assert.equal(constraints.ca, true);
  assert.equal(constraints.pathLength, 0);
  const keyUsage = parsed.getExtension(x509.KeyUsagesExtension);
  assert.ok(keyUsage);
  assert.equal(keyUsage.critical, true);
  assert.equal(keyUsage.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  assert.ok(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
});

Deno.test("issueIdentity: leaf verifies against its CA only, checked by node:crypto", () => {
  const cert = nodeCert(relay);
  assert.equal(cert.verify(nodeCert(ca).publicKey), true);
  assert.equal(cert.verify(nodeCert(otherCa).publicKey), false);
  assert.equal(cert.ca, false);
  assert.equal(cert.issuer, nodeCert(ca).subject);
  assert.match(cert.subject, /CN=relay-1/);
  assert.equal(cert.checkIssued(nodeCert(ca)), true);
  assert.equal(cert.checkIssued(nodeCert(otherCa)), false);
});

Deno.test("issueIdentity: subjectAltName covers exactly the dnsNames", () => {
  const cert = nodeCert(relay);
  assert.equal(cert.checkHost("relay.ztna.test"), "relay.ztna.test");
  assert.equal(cert.checkHost("localhost"), "localhost");
  assert.equal(cert.checkHost("other.ztna.test"), undefined);
  assert.equal(cert.subjectAltName, "DNS:relay.ztna.test, DNS:localhost");
});

Deno.test("issueIdentity: PKCS#8 key imports in node:crypto and matches the certificate", () => {
  assert.match(relay.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  const key = createPrivateKey(relay.privateKeyPem);
  const cert = nodeCert(relay);
  assert.equal(cert.checkPrivateKey(key), true);
  assert.equal(spki(createPublicKey(key)), spki(cert.publicKey));
  assert.equal(cert.checkPrivateKey(createPrivateKey(ca.privateKeyPem)), false);
});

Deno.test("issueIdentity: 16-byte positive random serials, 1-year default validity", async () => {
  const second = await issueIdentity(ca, { commonName: "relay-2", dnsNames: ["r2.ztna.test"] });
  for (const serial of [nodeCert(relay).serialNumber, nodeCert(second).serialNumber]) {
    assert.match(serial, /^[0-7][0-9A-F]{31}$/i, `serial ${serial}`);
  }
  assert.notEqual(nodeCert(relay).serialNumber, nodeCert(second).serialNumber);
  const cert = nodeCert(second);
  const now = Date.now();
  assert.ok(Math.abs(cert.validFromDate.getTime() - (now - 5 * 60_000)) < 60_000);
  assert.ok(Math.abs(cert.validToDate.getTime() - (now + 365 * DAY_MS)) < 2 * DAY_MS);
});

Deno.test("issueIdentity: leaf extensions for mutual TLS, keyed to the CA", () => {
  const parsed = new x509.X509Certificate(relay.certificatePem);
  const constraints = parsed.getExtension(x509.BasicConstraintsExtension);
  assert.equal(constraints?.ca, false);
  const keyUsage = parsed.getExtension(x509.KeyUsagesExtension);
  assert.equal(keyUsage?.critical, true);
  assert.equal(keyUsage?.usages, x509.KeyUsageFlags.digitalSignature);
  const eku = parsed.getExtension(x509.ExtendedKeyUsageExtension);
  assert.deepEqual([...eku?.usages ?? []], [
    x509.ExtendedKeyUsage.serverAuth,
    x509.ExtendedKeyUsage.clientAuth,
  ]);
  const caKeyId = new x509.X509Certificate(ca.certificatePem)
    .getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  assert.ok(caKeyId);
  assert.equal(parsed.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, caKeyId);
  const leafKeyId = parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  assert.ok(leafKeyId && leafKeyId !== caKeyId);
});

Deno.test("issueIdentity: explicit validity dates are honoured, including expired ones", async () => {
  const notBefore = new Date("2020-01-01T00:00:00Z");
  const notAfter = new Date("2021-01-01T00:00:00Z");
  const expired = await issueIdentity(ca, {
    commonName: "old",
    dnsNames: ["old.test"],
    notBefore,
    notAfter,
  });
  const cert = nodeCert(expired);
  assert.equal(cert.validFromDate.getTime(), notBefore.getTime());
  assert.equal(cert.validToDate.getTime(), notAfter.getTime());
  assert.ok(cert.validToDate.getTime() < Date.now());
  await assert.rejects(
    issueIdentity(ca, {
      commonName: "x",
      dnsNames: ["x.test"],
      notBefore: notAfter,
      notAfter: notBefore,
    }),
    /notBefore .* is not before notAfter/,
  );
});

Deno.test("issueIdentity: refuses a non-CA issuer, a missing CA key and bad names", async () => {
  await assert.rejects(
    issueIdentity(relay, { commonName: "child", dnsNames: ["child.test"] }),
    /cannot issue "child" from "CN=relay-1": it is not a CA/,
  );
  const keyless = { ...ca, privateKey: undefined as unknown as CryptoKey };
  await assert.rejects(
    issueIdentity(keyless, { commonName: "child", dnsNames: ["child.test"] }),
    /the CA private key is missing/,
  );
  const publicOnly = {
    ...ca,
    privateKey: (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
      "sign",
      "verify",
    ])).publicKey,
  };
  await assert.rejects(
    issueIdentity(publicOnly, { commonName: "child", dnsNames: ["child.test"] }),
    /the CA private key is missing/,
  );
  const wrongKey = { ...ca, privateKey: otherCa.privateKey };
  await assert.rejects(
    issueIdentity(wrongKey, { commonName: "child", dnsNames: ["child.test"] }),
    /does not match its certificate/,
  );
  await assert.rejects(
    issueIdentity(ca, { commonName: "x", dnsNames: [] }),
    /at least one DNS name/,
  );
  await assert.rejects(
    issueIdentity(ca, { commonName: "x", dnsNames: ["a b"] }),
    /invalid DNS name/,
  );
  await assert.rejects(createCa({ commonName: " " }), /commonName must be a non-empty string/);
});

Deno.test("loadIdentity: a stored CA round-trips and keeps issuing verifiable identities", async () => {
  const loaded = await loadIdentity(ca.certificatePem, ca.privateKeyPem);
  assert.equal(loaded.certificatePem, ca.certificatePem);
  assert.equal(loaded.privateKeyPem, ca.privateKeyPem);
  const leaf = await issueIdentity(loaded, { commonName: "agent-1", dnsNames: ["agent.test"] });
  assert.equal(nodeCert(leaf).verify(nodeCert(ca).publicKey), true);
  const leafAgain = await loadIdentity(leaf.certificatePem, leaf.privateKeyPem);
  assert.equal(leafAgain.certificate.subject, "CN=agent-1");
});

Deno.test("loadIdentity: rejects mismatched keys, SEC1 keys and garbage with context", async () => {
  await assert.rejects(
    loadIdentity(ca.certificatePem, otherCa.privateKeyPem),
    /private key from private key PEM does not match the certificate .*"CN=ztna test CA"/,
  );
  const sec1 = createPrivateKey(ca.privateKeyPem).export({ type: "sec1", format: "pem" })
    .toString();
  await assert.rejects(loadIdentity(ca.certificatePem, sec1), /SEC1 EC key.*openssl pkcs8 -topk8/);
  await assert.rejects(
    loadIdentity("not a pem", ca.privateKeyPem),
    /cannot load certificate from certificate PEM: expected a PEM block "CERTIFICATE", no PEM blocks/,
  );
  await assert.rejects(
    loadIdentity(ca.certificatePem, ca.certificatePem),
    /cannot load private key from private key PEM: .*found "CERTIFICATE"/,
  );
});

Deno.test("writeIdentityFiles/readIdentityFiles: 0600 key, no silent overwrite, round trip", async () => {
  await withTempDir("ztna-pki-", async (dir) => {
    const target = `${dir}/nested/pki`;
    const { certPath, keyPath } = await writeIdentityFiles(relay, target, "relay");
    assert.equal(certPath, `${target}/relay.crt`);
    assert.equal(keyPath, `${target}/relay.key`);
    assert.equal(await Deno.readTextFile(certPath), relay.certificatePem);
    assert.equal(await Deno.readTextFile(keyPath), relay.privateKeyPem);
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(keyPath)).mode! & 0o777, 0o600);

    await assert.rejects(writeIdentityFiles(ca, target, "relay"), /refusing to overwrite/);
    assert.equal(await Deno.readTextFile(keyPath), relay.privateKeyPem);

    if (Deno.build.os !== "windows") await Deno.chmod(keyPath, 0o644);
    await writeIdentityFiles(ca, target, "relay", { overwrite: true });
    assert.equal(await Deno.readTextFile(keyPath), ca.privateKeyPem);
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(keyPath)).mode! & 0o777, 0o600);

    const reloaded = await readIdentityFiles(certPath, keyPath);
    assert.equal(reloaded.certificatePem, ca.certificatePem);
    await assert.rejects(
      readIdentityFiles(certPath, `${dir}/missing.key`),
      /cannot read private key .*missing\.key/,
    );
    await assert.rejects(
      writeIdentityFiles(ca, target, "../escape"),
      /invalid identity file base name/,
    );
  });
});

Deno.test({
  name: "openssl verify accepts the leaf for server and client auth, rejects other CA and expiry",
  ignore: !hasOpenssl,
  fn: () =>
    withTempDir("ztna-pki-", async (dir) => {
      const caFile = (await writeIdentityFiles(ca, dir, "ca")).certPath;
      const otherCaFile = (await writeIdentityFiles(otherCa, dir, "other-ca")).certPath;
      const leafFile = (await writeIdentityFiles(relay, dir, "relay")).certPath;
      for (const purpose of ["sslserver", "sslclient"]) {
        const result = await openssl(
          "verify",
          "-x509_strict",
          "-purpose",
          purpose,
          "-CAfile",
          caFile,
          leafFile,
        );
        assert.ok(result.ok, `openssl verify -purpose ${purpose}: ${result.output}`);
      }
      const wrong = await openssl("verify", "-CAfile", otherCaFile, leafFile);
      assert.equal(wrong.ok, false, wrong.output);
      const expired = await issueIdentity(ca, {
        commonName: "old",
        dnsNames: ["old.test"],
        notBefore: new Date("2020-01-01T00:00:00Z"),
        notAfter: new Date("2021-01-01T00:00:00Z"),
      });
      const expiredFile = (await writeIdentityFiles(expired, dir, "old")).certPath;
      const stale = await openssl("verify", "-CAfile", caFile, expiredFile);
      assert.equal(stale.ok, false);
      assert.match(stale.output, /certificate has expired/);
      const keyCheck = await openssl("pkey", "-in", `${dir}/relay.key`, "-check", "-noout");
      assert.ok(keyCheck.ok, keyCheck.output);
    }),
});

Deno.test({
  name: "an openssl-made CA loads and issues identities that openssl verifies",
  ignore: !hasOpenssl,
  fn: () =>
    withTempDir("ztna-pki-", async (dir) => {
      const keyGen = await openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        `${dir}/ca.key`,
      );
      assert.ok(keyGen.ok, keyGen.output);
      const req = await openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        `${dir}/ca.key`,
        "-subj",
        "/O=Example/CN=openssl CA",
        "-days",
        "30",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        `${dir}/ca.crt`,
      );
      assert.ok(req.ok, req.output);
      const stored = await readIdentityFiles(`${dir}/ca.crt`, `${dir}/ca.key`);
      const leaf = await issueIdentity(stored, { commonName: "connector", dnsNames: ["c.test"] });
      const { certPath } = await writeIdentityFiles(leaf, dir, "connector");
      const result = await openssl(
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        `${dir}/ca.crt`,
        certPath,
      );
      assert.ok(result.ok, result.output);
    }),
});

Deno.test("a TLS handshake (rustls) trusts the relay certificate only via its CA", async () => {
  const listener = Deno.listenTls({
    hostname: "localhost",
    port: 0,
    cert: relay.certificatePem,
    key: relay.privateKeyPem,
  });
  const { port } = listener.addr;
  const serve = (async () => {
    for await (const conn of listener) {
      await conn.handshake().catch(() => {});
      conn.close();
    }
  })();
  try {
    const good = await Deno.connectTls({
      hostname: "localhost",
      port,
      caCerts: [ca.certificatePem],
    });
    await good.handshake();
    good.close();
    const bad = await Deno.connectTls({
      hostname: "localhost",
      port,
      caCerts: [otherCa.certificatePem],
    });
    await assert.rejects(bad.handshake(), /certificate|UnknownIssuer/i);
    bad.close();
  } finally {
    listener.close();
    await serve;
  }
});
