/**
 * Start-up checks of a relay's identity files, so a wrong file fails with a
 * clear message instead of as a TLS alert on every node: the key matches the
 * certificate, the certificate grants `ztna:role:relay`, is within its
 * validity and is signed by a CA in the CA file.
 */
// @peculiar/x509 loads tsyringe, which needs the reflect-metadata API: it must be evaluated first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { readIdentityFiles } from "../pki/mod.ts";
import { CERTIFICATE_LABEL, decodePem } from "../pki/pem.ts";
import { readText } from "../pki/files.ts";
import { type IdentitySummary, summarizeCertificate } from "./summary.ts";

/** A relay's certificate, key and trusted CA (PEM files), as `Relay.start` takes them. */
export interface RelayIdentityFiles {
  certificateFile: string;
  privateKeyFile: string;
  caFile: string;
}

/** Every certificate in a PEM text, parsed. */
function certificatesIn(pem: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new x509.X509Certificate(decodePem(CERTIFICATE_LABEL, block)));
}

/** True when `anchor`'s key signed `certificate` (false for keys of another type, too). */
async function signedBy(
  certificate: x509.X509Certificate,
  anchor: x509.X509Certificate,
): Promise<boolean> {
  try {
    return await certificate.verify({ publicKey: anchor.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

/** Checks a relay's identity files; returns the certificate's summary or throws naming the file. */
export async function checkRelayIdentity(
  files: RelayIdentityFiles,
  now = new Date(),
): Promise<IdentitySummary> {
  const identity = await readIdentityFiles(files.certificateFile, files.privateKeyFile);
  const summary = await summarizeCertificate(new Uint8Array(identity.certificate.rawData));
  const cert = files.certificateFile;
  if (summary.role !== "relay") {
    throw new Error(
      `${cert} grants ${summary.role ? `role ${summary.role}` : "no role"}, not relay: ` +
        "issue the relay's identity with 'ztna identity issue --role relay --host NAME ...'",
    );
  }
  if (now < identity.certificate.notBefore) {
    throw new Error(`${cert} is not valid before ${summary.notBefore}`);
  }
  if (now > identity.certificate.notAfter) {
    throw new Error(`${cert} expired on ${summary.notAfter}; issue a new relay identity`);
  }
  let anchors: x509.X509Certificate[];
  try {
    anchors = certificatesIn(await readText(files.caFile, "CA certificate"));
  } catch (error) {
    throw new Error(
      `cannot load CA certificates from ${files.caFile}: ${(error as Error).message}`,
    );
  }
  if (anchors.length === 0) throw new Error(`${files.caFile} holds no PEM certificate`);
  for (const anchor of anchors) {
    if (await signedBy(identity.certificate, anchor)) return summary;
  }
  throw new Error(
    `${cert} (issuer "${summary.issuer}") is not signed by the CA in ${files.caFile}: ` +
      "nodes trusting that CA would refuse the relay",
  );
}
