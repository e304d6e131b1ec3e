/** A daemon's Prometheus registry: process metrics, its certificate's expiry, its own collectors. */
import { Registry } from "prom-client";
import type { CertificateExpiry } from "../pki/expiry.ts";
import { registerCertificateMetrics } from "./certificate_metrics.ts";
import { registerProcessMetrics } from "./process_metrics.ts";

/** Makes the registry one daemon serves; `collectors` adds the relay's or the node's. */
export function daemonRegistry(
  expiry: CertificateExpiry | undefined,
  collectors: ((registry: Registry) => void) | undefined,
): Registry {
  const registry = new Registry();
  registerProcessMetrics(registry);
  if (expiry) registerCertificateMetrics(registry, expiry);
  collectors?.(registry);
  return registry;
}
