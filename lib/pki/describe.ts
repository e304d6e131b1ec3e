/** Human-oriented summaries of X.509 certificates (for diagnostics such as `ztna probe`). */
// @peculiar/x509 loads tsyringe, which needs the reflect-metadata API: it must be evaluated first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

/** What an operator checks in a certificate. */
export interface CertificateSummary {
  /** Subject distinguished name, e.g. `CN=relay.example`. */
  subject: string;
  /** Issuer distinguished name. */
  issuer: string;
  /** Subject alternative names, e.g. `DNS:relay.example`, `IP:192.0.2.1`. */
  subjectAltNames: string[];
  /** Start of validity (ISO 8601). */
  notBefore: string;
  /** End of validity (ISO 8601). */
  notAfter: string;
  /** Serial number, hexadecimal. */
  serialNumber: string;
  /** SHA-256 of the DER encoding, colon-separated uppercase hex. */
  sha256Fingerprint: string;
}

const SAN_PREFIX: Readonly<Record<string, string>> = {
  dns: "DNS",
  ip: "IP",
  email: "email",
  url: "URI",
  dn: "DirName",
  guid: "GUID",
  upn: "UPN",
  id: "RID",
};

/** Parses a DER certificate and summarizes it; throws if it is not a certificate. */
export async function describeCertificate(der: Uint8Array): Promise<CertificateSummary> {
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(der as Uint8Array<ArrayBuffer>);
  } catch (error) {
    throw new Error(`cannot parse certificate: ${(error as Error).message}`);
  }
  const san = certificate.getExtension(x509.SubjectAlternativeNameExtension);
  const subjectAltNames =
    san?.names.items.map((name) => `${SAN_PREFIX[name.type] ?? name.type}:${name.value}`) ?? [];
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", der as Uint8Array<ArrayBuffer>),
  );
  return {
    subject: certificate.subject,
    issuer: certificate.issuer,
    subjectAltNames,
    notBefore: certificate.notBefore.toISOString(),
    notAfter: certificate.notAfter.toISOString(),
    serialNumber: certificate.serialNumber,
    sha256Fingerprint: [...digest].map((b) => b.toString(16).padStart(2, "0").toUpperCase())
      .join(":"),
  };
}
