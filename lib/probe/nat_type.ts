/**
 * The NAT-type probe: binds a fresh client endpoint (and, inside the check, a second socket
 * for the filtering tests), runs the RFC 5780 check against a relay's STUN responder or any
 * RFC 5780 server, and closes everything. The report is the check's result. A server given
 * by host name is resolved and its addresses are tried in turn until one answers.
 */
import { familyOf, formatAddress, type SocketAddress } from "../net/address.ts";
import {
  formatHostPort,
  HostNotFoundError,
  type HostPort,
  isIpLiteral,
  NoUsableAddressError,
  reachableAddresses,
  resolveHostPort,
  type Resolver,
} from "../net/resolve.ts";
import { checkNat } from "../natcheck/check.ts";
import type { NatCheckResult } from "../natcheck/result.ts";
import { Endpoint } from "../quic/endpoint.ts";
import { ProbeError } from "./quic.ts";

/** What to probe. */
export interface NatTypeProbeOptions {
  /** The STUN server: the relay's address or host name (STUN shares its QUIC port). */
  server: HostPort;
  /** Resolves a host name (default: the system's resolver, /etc/hosts included). */
  resolver?: Resolver;
  /** How long to wait for the server's first answer (per address). */
  timeoutMs: number;
  /** The local address to probe from (default: the wildcard of the server's family, port 0). */
  bind?: SocketAddress;
}

/**
 * Classifies the NAT in front of this host, against the first of the server's addresses
 * (those `bind` can reach, in resolution order) that answers. Rejects with a ProbeError when
 * the name does not resolve, or when no address answered test I or answered it without an
 * error (nothing could be classified); otherwise resolves with the result, however partial.
 */
export async function probeNatType(options: NatTypeProbeOptions): Promise<NatCheckResult> {
  const given = formatHostPort(options.server);
  let addresses: SocketAddress[];
  try {
    addresses = options.bind
      ? await reachableAddresses(
        options.server,
        options.bind,
        familyOf(options.bind),
        options.resolver,
      )
      : await resolveHostPort(options.server, options.resolver);
  } catch (error) {
    if (error instanceof HostNotFoundError || error instanceof NoUsableAddressError) {
      throw new ProbeError(error.message);
    }
    throw error;
  }
  const named = !isIpLiteral(options.server.hostname);
  const failures: string[] = [];
  for (const address of addresses) {
    try {
      return await probeAddress(
        options,
        address,
        named ? `${given} (${formatAddress(address)})` : given,
      );
    } catch (error) {
      if (!(error instanceof ProbeError)) throw error;
      failures.push(error.message);
    }
  }
  throw new ProbeError(failures.join("; "));
}

/** Runs the check against one address of the server; `server` names it in messages. */
async function probeAddress(
  options: NatTypeProbeOptions,
  address: SocketAddress,
  server: string,
): Promise<NatCheckResult> {
  const wildcard = familyOf(address) === 6 ? "::" : "0.0.0.0";
  const endpoint = Endpoint.bind({ address: options.bind ?? { hostname: wildcard, port: 0 } });
  let result: NatCheckResult;
  try {
    result = await checkNat(endpoint, { server: address, timeoutMs: options.timeoutMs });
  } finally {
    await endpoint.close();
  }
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
