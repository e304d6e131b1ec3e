/**
 * The NAT-type probe: binds a fresh client endpoint (and, inside the check, a second socket
 * for the filtering tests), runs the RFC 5780 check against a relay's STUN responder or any
 * RFC 5780 server, and closes everything. The report is the check's result.
 */
import { familyOf, formatAddress, type SocketAddress } from "../net/address.ts";
import { checkNat } from "../natcheck/check.ts";
import type { NatCheckResult } from "../natcheck/result.ts";
import { Endpoint } from "../quic/endpoint.ts";
import { ProbeError } from "./quic.ts";

/** What to probe. */
export interface NatTypeProbeOptions {
  /** The STUN server: the relay's address (STUN shares its QUIC port). */
  server: SocketAddress;
  /** How long to wait for the server's first answer. */
  timeoutMs: number;
  /** The local address to probe from (default: the wildcard of the server's family, port 0). */
  bind?: SocketAddress;
}

/**
 * Classifies the NAT in front of this host. Rejects with a ProbeError when the server never
 * answered test I or answered it with an error (nothing could be classified); otherwise
 * resolves with the result, however partial.
 */
export async function probeNatType(options: NatTypeProbeOptions): Promise<NatCheckResult> {
  const wildcard = familyOf(options.server) === 6 ? "::" : "0.0.0.0";
  const endpoint = Endpoint.bind({ address: options.bind ?? { hostname: wildcard, port: 0 } });
  let result: NatCheckResult;
  try {
    result = await checkNat(endpoint, { server: options.server, timeoutMs: options.timeoutMs });
  } finally {
    await endpoint.close();
  }
  const server = formatAddress(options.server);
  const first = result.tests.find((test) => test.test === "testI")!;
  if (!result.serverAnswered) {
    throw new ProbeError(
      `no STUN answer from ${server} within ${options.timeoutMs} ms (${first.transmissions} ` +
        "Binding requests sent): is the relay running there with STUN on (not --no-stun), " +
        "and is UDP to it open?",
    );
  }
  if (first.outcome === "error") {
    const error = first.error!;
    throw new ProbeError(
      `${server} answered the Binding request with error ${error.code}` +
        `${error.reason ? ` (${error.reason})` : ""}: nothing to classify`,
    );
  }
  return result;
}
