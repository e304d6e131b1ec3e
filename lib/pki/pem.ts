/** PEM armour: DER bytes <-> `-----BEGIN <LABEL>-----` text (RFC 7468). */

/** PEM label of an X.509 certificate. */
export const CERTIFICATE_LABEL = "CERTIFICATE";
/** PEM label of an unencrypted PKCS#8 private key (what BoringSSL/quiche load). */
export const PRIVATE_KEY_LABEL = "PRIVATE KEY";

/** Wraps DER bytes in PEM armour with 64-character base64 lines and a trailing newline. */
export function encodePem(label: string, der: ArrayBuffer | Uint8Array): string {
  const bytes = der instanceof Uint8Array ? der : new Uint8Array(der);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  const lines = btoa(binary).match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/**
 * Returns the DER bytes of the first PEM block labelled `label`.
 * Throws if there is no such block (naming the labels that were found) or its base64 is invalid.
 */
export function decodePem(label: string, pem: string): Uint8Array<ArrayBuffer> {
  const blocks = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  const found: string[] = [];
  for (const match of pem.matchAll(blocks)) {
    found.push(match[1]);
    if (match[1] !== label) continue;
    let binary: string;
    try {
      binary = atob(match[2].replace(/\s+/g, ""));
    } catch (error) {
      throw new Error(`invalid base64 in PEM block "${label}": ${errorMessage(error)}`);
    }
    return Uint8Array.from(binary, (char) => char.charCodeAt(0));
  }
  const seen = found.length > 0
    ? `found ${found.map((l) => `"${l}"`).join(", ")}`
    : "no PEM blocks";
  throw new Error(`expected a PEM block "${label}", ${seen}`);
}

/** Message of an unknown thrown value, for wrapping errors with context. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
