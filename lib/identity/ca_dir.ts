/**
 * A CA directory: `ca.crt` (the organisation's trust anchor, public) and
 * `ca.key` (its private key, mode 0600, to be kept offline).
 */
import { join } from "node:path";
import { createCa, type Identity, readIdentityFiles, writeIdentityFiles } from "../pki/mod.ts";
import { ensureDir, exists } from "../pki/files.ts";

/** File name of the CA certificate, in a CA directory and next to every identity. */
export const CA_CERT_FILE = "ca.crt";
/** File name of the CA private key in a CA directory. */
export const CA_KEY_FILE = "ca.key";
/** Common name of a CA when none is given. */
export const DEFAULT_CA_NAME = "ztna CA";

/** Paths of a CA directory's files. */
export interface CaFiles {
  certPath: string;
  keyPath: string;
}

/** The file paths of the CA in `dir`. */
export function caFiles(dir: string): CaFiles {
  return { certPath: join(dir, CA_CERT_FILE), keyPath: join(dir, CA_KEY_FILE) };
}

/**
 * Creates a CA named `commonName` in `dir` (created 0700 if missing). Refuses,
 * before generating anything, if `ca.crt` or `ca.key` already exists there.
 */
export async function initCa(dir: string, commonName: string): Promise<CaFiles & { ca: Identity }> {
  const files = caFiles(dir);
  for (const path of [files.keyPath, files.certPath]) {
    if (await exists(path)) {
      throw new Error(
        `${path} already exists: refusing to overwrite a CA (every identity it issued would ` +
          `stop verifying); choose another directory or move the old CA away first`,
      );
    }
  }
  const ca = await createCa({ commonName });
  await ensureDir(dir);
  await writeIdentityFiles(ca, dir, "ca");
  return { ...files, ca };
}

/**
 * Loads the CA (certificate and private key) of `dir`. A missing key gets an
 * error saying so, since production relays keep only `ca.crt`.
 */
export async function loadCa(dir: string): Promise<Identity> {
  const files = caFiles(dir);
  if (!(await exists(files.keyPath))) {
    const hint = (await exists(files.certPath))
      ? "this directory holds only the CA certificate; issue identities where ca.key is kept"
      : `create a CA with 'ztna identity init-ca --dir ${dir}'`;
    throw new Error(`no CA private key ${files.keyPath}: ${hint}`);
  }
  return await readIdentityFiles(files.certPath, files.keyPath);
}
