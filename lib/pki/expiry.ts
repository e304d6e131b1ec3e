/**
 * When a daemon's certificate expires, read from its file on demand: the file is
 * parsed again only when its modification time or size changed, so a
 * certificate replaced on disk (and reloaded by the daemon) shows its new date
 * without any wiring. Reads are synchronous: a certificate is a few KiB and the
 * status and metrics paths that ask are synchronous.
 */
// @peculiar/x509 loads tsyringe, which needs the reflect-metadata API: it must be evaluated first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { CERTIFICATE_LABEL, decodePem, errorMessage } from "./pem.ts";

/** A certificate within this many days of its end is warned about. */
export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 86_400_000;

/** The expiry of a certificate file, for status output. */
export interface CertificateExpiryStatus {
  /** The certificate file. */
  file: string;
  /** End of validity (ISO 8601), or null if the file could not be read. */
  notAfter: string | null;
  /** Whole days left (negative once expired), or null if unknown. */
  daysLeft: number | null;
  /** Why the file could not be read. */
  error?: string;
}

/** Reads the end of validity of one certificate file, cached by the file's mtime and size. */
export class CertificateExpiry {
  readonly #file: () => string;
  #key = "";
  #notAfter: Date | undefined;

  /**
   * Watches `file` (PEM; its first certificate is the daemon's own), or the
   * file a function names at each read (a reload may move the certificate).
   */
  constructor(file: string | (() => string)) {
    this.#file = typeof file === "string" ? () => file : file;
  }

  /** The certificate file now. */
  get file(): string {
    return this.#file();
  }

  /** The certificate's notAfter; throws an Error naming the file if it cannot be read or parsed. */
  notAfter(): Date {
    const file = this.file;
    let key: string;
    try {
      const info = Deno.statSync(file);
      key = `${file}\n${info.mtime?.getTime()}/${info.size}`;
      if (key === this.#key && this.#notAfter) return this.#notAfter;
      const der = decodePem(CERTIFICATE_LABEL, Deno.readTextFileSync(file));
      this.#notAfter = new x509.X509Certificate(der).notAfter;
    } catch (error) {
      throw new Error(`cannot read the certificate ${file}: ${errorMessage(error)}`);
    }
    this.#key = key;
    return this.#notAfter;
  }

  /** The expiry as `ztna status` shows it (an unreadable file gives nulls and the error). */
  status(now = Date.now()): CertificateExpiryStatus {
    const file = this.file;
    try {
      const notAfter = this.notAfter();
      return {
        file,
        notAfter: notAfter.toISOString(),
        daysLeft: Math.floor((notAfter.getTime() - now) / DAY_MS),
      };
    } catch (error) {
      return { file, notAfter: null, daysLeft: null, error: errorMessage(error) };
    }
  }

  /**
   * The warning to log when the certificate expires within `days` (or has
   * expired, or cannot be read), else null.
   */
  warning(now = Date.now(), days = EXPIRY_WARNING_DAYS): string | null {
    const status = this.status(now);
    if (status.error !== undefined) return status.error;
    const left = status.daysLeft!;
    if (left >= days) return null;
    return left < 0
      ? `the certificate ${status.file} expired at ${status.notAfter}: renew it`
      : `the certificate ${status.file} expires ${
        left === 0 ? "within a day" : `in ${left} days`
      }, at ${status.notAfter}: renew it`;
  }
}
