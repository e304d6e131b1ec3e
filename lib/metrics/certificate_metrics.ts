/** The daemon's certificate expiry as a Prometheus gauge, read from the file at each scrape. */
import type { Registry } from "prom-client";
import type { CertificateExpiry } from "../pki/expiry.ts";
import { readGauge, single } from "./collectors.ts";

/**
 * Registers `ztna_certificate_expiry_timestamp_seconds` (notAfter as a Unix
 * timestamp). A certificate that cannot be read gives 0, so that an expiry
 * alert fires for it too.
 */
export function registerCertificateMetrics(registry: Registry, expiry: CertificateExpiry): void {
  readGauge(registry, {
    name: "ztna_certificate_expiry_timestamp_seconds",
    help: "End of validity (notAfter) of this daemon's certificate as a Unix timestamp; " +
      "0 if the file cannot be read.",
    read: () => {
      try {
        return single(expiry.notAfter().getTime() / 1000);
      } catch {
        return single(0);
      }
    },
  });
}
