/**
 * A private certificate authority for ztna nodes, in pure WebCrypto (no openssl):
 * create a CA, issue mutual-TLS identities from it, and store/reload both as PEM files.
 */
// @peculiar/x509 loads tsyringe, which needs the reflect-metadata API: it must be evaluated first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { exists } from "./files.ts";
import { CERTIFICATE_LABEL, decodePem, encodePem, errorMessage, PRIVATE_KEY_LABEL } from "./pem.ts";

/** A certificate with its private key, as PEM text (for files and quiche) and as parsed objects. */
export interface Identity {
  /** `-----BEGIN CERTIFICATE-----` PEM of the certificate. */
  certificatePem: string;
  /** `-----BEGIN PRIVATE KEY-----` (unencrypted PKCS#8) PEM of the ECDSA P-256 key. */
  privateKeyPem: string;
  /** The parsed certificate. */
  certificate: x509.X509Certificate;
  /** The private key as a WebCrypto ECDSA P-256 signing key. */
  privateKey: CryptoKey;
}

/** Options of {@link createCa}. Dates default to 5 minutes ago and 10 years from now. */
export interface CaOptions {
  commonName: string;
  notBefore?: Date;
  notAfter?: Date;
}

/** Options of {@link issueIdentity}. Dates default to 5 minutes ago and 1 year from now. */
export interface IdentityOptions {
  commonName: string;
  /** DNS names the identity answers to (subjectAltName); at least one. */
  dnsNames: string[];
  /** URIs the identity carries (subjectAltName), e.g. ztna's `ztna:role:agent` grants. */
  uris?: string[];
  notBefore?: Date;
  notAfter?: Date;
}

const CLOCK_SKEW_MS = 5 * 60 * 1000;
const EC_KEY: EcKeyImportParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING_ALGORITHM: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

/** Creates a self-signed CA (CA:TRUE, pathLen 0) that may sign leaf identities only. */
export async function createCa(options: CaOptions): Promise<Identity> {
  useWebCrypto();
  requireCommonName(options.commonName);
  const { notBefore, notAfter } = validity(options, 10);
  const keys = await generateKeyPair();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: [{ CN: [options.commonName] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return await toIdentity(certificate, keys.privateKey);
}

/**
 * Issues a leaf identity signed by `ca`, valid for TLS server and client authentication.
 * Throws if `ca` is not a CA certificate or lacks its private key.
 */
export async function issueIdentity(ca: Identity, options: IdentityOptions): Promise<Identity> {
  useWebCrypto();
  requireCommonName(options.commonName);
  requireDnsNames(options.dnsNames);
  const caName = ca.certificate instanceof x509.X509Certificate ? ca.certificate.subject : "?";
  const context = `cannot issue "${options.commonName}" from "${caName}"`;
  requireCa(ca, context);
  const { notBefore, notAfter } = validity(options, 1);
  const keys = await generateKeyPair();
  const caSki = ca.certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  const authorityKeyId = caSki
    ? new x509.AuthorityKeyIdentifierExtension(caSki.keyId)
    : await x509.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey);
  let certificate: x509.X509Certificate;
  try {
    certificate = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialNumber(),
      subject: [{ CN: [options.commonName] }],
      issuer: ca.certificate.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: ca.privateKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        new x509.SubjectAlternativeNameExtension(
          [
            ...options.dnsNames.map((value) => ({ type: "dns" as const, value })),
            ...(options.uris ?? []).map((value) => ({ type: "url" as const, value })),
          ],
        ),
        authorityKeyId,
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
  } catch (error) {
    throw new Error(`${context}: signing failed: ${errorMessage(error)}`);
  }
  const signedByCa = await certificate.verify({
    publicKey: ca.certificate.publicKey,
    signatureOnly: true,
  });
  if (!signedByCa) throw new Error(`${context}: the CA private key does not match its certificate`);
  return await toIdentity(certificate, keys.privateKey);
}

/**
 * Re-imports an identity from its certificate PEM and PKCS#8 key PEM (e.g. a stored CA).
 * Throws if either does not parse, the key is not ECDSA P-256, or the key does not match.
 */
export function loadIdentity(certificatePem: string, privateKeyPem: string): Promise<Identity> {
  return loadIdentityFrom(certificatePem, privateKeyPem, "certificate PEM", "private key PEM");
}

/** Reads and re-imports an identity from `<certPath>` and `<keyPath>`; errors name the file. */
export async function readIdentityFiles(certPath: string, keyPath: string): Promise<Identity> {
  const read = async (path: string, what: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (error) {
      throw new Error(`cannot read ${what} ${path}: ${errorMessage(error)}`);
    }
  };
  const certificatePem = await read(certPath, "certificate");
  const privateKeyPem = await read(keyPath, "private key");
  return await loadIdentityFrom(certificatePem, privateKeyPem, certPath, keyPath);
}

/**
 * Writes `<dir>/<baseName>.crt` and `<dir>/<baseName>.key` (key mode 0o600), creating `dir`.
 * Refuses to replace existing files unless `overwrite` is set, so a CA key is never lost by mistake.
 */
export async function writeIdentityFiles(
  identity: Identity,
  dir: string,
  baseName: string,
  options: { overwrite?: boolean } = {},
): Promise<{ certPath: string; keyPath: string }> {
  if (!/^[^/\\]+$/.test(baseName) || baseName === "." || baseName === "..") {
    throw new Error(`invalid identity file base name "${baseName}": expected a plain file name`);
  }
  const prefix = `${dir.replace(/[/\\]+$/, "")}/${baseName}`;
  const certPath = `${prefix}.crt`;
  const keyPath = `${prefix}.key`;
  try {
    await Deno.mkdir(dir, { recursive: true });
    if (!options.overwrite) {
      for (const path of [certPath, keyPath]) {
        if (await exists(path)) throw new Error(`refusing to overwrite existing ${path}`);
      }
    }
    // Create (or empty) the key file and restrict it before the key is written into it.
    await Deno.writeTextFile(keyPath, "", { mode: 0o600, createNew: !options.overwrite });
    if (Deno.build.os !== "windows") await Deno.chmod(keyPath, 0o600);
    await Deno.writeTextFile(keyPath, identity.privateKeyPem);
    await Deno.writeTextFile(certPath, identity.certificatePem, {
      mode: 0o644,
      createNew: !options.overwrite,
    });
  } catch (error) {
    throw new Error(`cannot write identity "${baseName}" to ${dir}: ${errorMessage(error)}`);
  }
  return { certPath, keyPath };
}

/** Installs WebCrypto as @peculiar/x509's provider; safe to call repeatedly. */
function useWebCrypto(): void {
  x509.cryptoProvider.set(crypto);
}

async function loadIdentityFrom(
  certificatePem: string,
  privateKeyPem: string,
  certSource: string,
  keySource: string,
): Promise<Identity> {
  useWebCrypto();
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(decodePem(CERTIFICATE_LABEL, certificatePem));
  } catch (error) {
    throw new Error(`cannot load certificate from ${certSource}: ${errorMessage(error)}`);
  }
  let privateKey: CryptoKey;
  try {
    privateKey = await importPrivateKey(privateKeyPem);
  } catch (error) {
    throw new Error(`cannot load private key from ${keySource}: ${errorMessage(error)}`);
  }
  if (!(await keyMatchesCertificate(privateKey, certificate))) {
    throw new Error(
      `private key from ${keySource} does not match the certificate from ${certSource} ` +
        `("${certificate.subject}")`,
    );
  }
  return await toIdentity(certificate, privateKey);
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  if (pem.includes("-----BEGIN EC PRIVATE KEY-----")) {
    throw new Error(
      "it is a SEC1 EC key; convert it to PKCS#8 with " +
        "`openssl pkcs8 -topk8 -nocrypt -in old.key -out new.key`",
    );
  }
  const der = decodePem(PRIVATE_KEY_LABEL, pem);
  try {
    return await crypto.subtle.importKey("pkcs8", der, EC_KEY, true, ["sign"]);
  } catch (error) {
    throw new Error(`not an ECDSA P-256 PKCS#8 key: ${errorMessage(error)}`);
  }
}

async function keyMatchesCertificate(
  privateKey: CryptoKey,
  certificate: x509.X509Certificate,
): Promise<boolean> {
  let certificateKey: CryptoKey;
  try {
    certificateKey = await certificate.publicKey.export(EC_KEY, ["verify"]);
  } catch {
    return false; // not a P-256 certificate key, so it cannot match a P-256 private key
  }
  const ours = await crypto.subtle.exportKey("jwk", privateKey);
  const theirs = await crypto.subtle.exportKey("jwk", certificateKey);
  return ours.x === theirs.x && ours.y === theirs.y;
}

function requireCa(ca: Identity, context: string): void {
  if (!(ca.certificate instanceof x509.X509Certificate)) {
    throw new Error(`${context}: the CA identity has no parsed certificate`);
  }
  const constraints = ca.certificate.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) throw new Error(`${context}: it is not a CA (basicConstraints CA:TRUE)`);
  const keyUsage = ca.certificate.getExtension(x509.KeyUsagesExtension);
  if (keyUsage && !(keyUsage.usages & x509.KeyUsageFlags.keyCertSign)) {
    throw new Error(`${context}: its keyUsage does not allow keyCertSign`);
  }
  const key = ca.privateKey;
  if (!(key instanceof CryptoKey) || key.type !== "private" || !key.usages.includes("sign")) {
    throw new Error(`${context}: the CA private key is missing`);
  }
}

function requireCommonName(commonName: string): void {
  if (typeof commonName !== "string" || commonName.trim() === "") {
    throw new Error("commonName must be a non-empty string");
  }
}

function requireDnsNames(dnsNames: string[]): void {
  if (!Array.isArray(dnsNames) || dnsNames.length === 0) {
    throw new Error("dnsNames must list at least one DNS name");
  }
  for (const name of dnsNames) {
    if (typeof name !== "string" || !/^[\x21-\x7e]+$/.test(name)) {
      throw new Error(
        `invalid DNS name "${name}": expected ASCII without spaces (punycode for IDN)`,
      );
    }
  }
}

/** Resolves validity dates: starts 5 minutes ago for clock skew, lasts `years` from the start. */
function validity(
  options: { notBefore?: Date; notAfter?: Date },
  years: number,
): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  const notBefore = options.notBefore ?? new Date(now - CLOCK_SKEW_MS);
  let notAfter = options.notAfter;
  if (!notAfter) {
    notAfter = new Date(options.notBefore ?? now);
    notAfter.setUTCFullYear(notAfter.getUTCFullYear() + years);
  }
  if (!(notBefore.getTime() < notAfter.getTime())) {
    throw new Error(
      `invalid validity: notBefore ${notBefore.toISOString()} is not before ` +
        `notAfter ${notAfter.toISOString()}`,
    );
  }
  return { notBefore, notAfter };
}

function generateKeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"]);
}

/** 16 random bytes as hex, high bit clear (positive) and next bit set (no leading zero byte). */
function randomSerialNumber(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] & 0x7f) | 0x40;
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function toIdentity(
  certificate: x509.X509Certificate,
  privateKey: CryptoKey,
): Promise<Identity> {
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", privateKey);
  return {
    certificatePem: encodePem(CERTIFICATE_LABEL, certificate.rawData),
    privateKeyPem: encodePem(PRIVATE_KEY_LABEL, pkcs8),
    certificate,
    privateKey,
  };
}
