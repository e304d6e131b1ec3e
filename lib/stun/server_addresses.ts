/**
 * The transport addresses of an RFC 5780 server: a primary IP and port and, optionally, an
 * alternate IP and an alternate port, which make up to four addresses (IP1:P1, IP1:P2, IP2:P1,
 * IP2:P2). Which address a response to CHANGE-REQUEST leaves from, and what OTHER-ADDRESS says,
 * follow from the address the request arrived on (RFC 5780 §6.1, §7.4). Pure.
 */
import { familyOf, formatAddress, type SocketAddress } from "../net/address.ts";
import { sameIp } from "./socket_address.ts";

/** Where a STUN server listens. */
export interface StunServerAddresses {
  /**
   * The primary address. A wildcard IP (0.0.0.0, ::) means the server does not know which of
   * the machine's addresses a request arrived on: it then sends no RESPONSE-ORIGIN and can
   * have no alternates.
   */
  primary: SocketAddress;
  /** A second IP of the machine, of the primary's family. */
  alternateIp?: string;
  /** A second port, on every IP. */
  alternatePort?: number;
}

/** A server address set that cannot work (a wildcard with alternates, equal IPs, ...). */
export class StunAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StunAddressError";
  }
}

/** Whether an IP is the IPv4 or IPv6 wildcard. */
export function isWildcardIp(hostname: string): boolean {
  return sameIp(hostname, "0.0.0.0") || sameIp(hostname, "::");
}

/**
 * Checks an address set: alternates need a specific primary IP (a wildcard socket cannot tell
 * which address a request came to, so it could not say where it answers from); the alternate
 * IP must be a specific address of the primary's family other than the primary; the alternate
 * port must be 1-65535 and not the primary's. Throws a StunAddressError saying which.
 */
export function checkServerAddresses(addresses: StunServerAddresses): void {
  const { primary, alternateIp, alternatePort } = addresses;
  const hasAlternate = alternateIp !== undefined || alternatePort !== undefined;
  if (hasAlternate && isWildcardIp(primary.hostname)) {
    throw new StunAddressError(
      `an alternate address or port needs a specific listening address, not ` +
        `${formatAddress(primary)}: a wildcard socket cannot tell which address a request ` +
        "came to",
    );
  }
  if (alternatePort !== undefined) {
    if (!Number.isInteger(alternatePort) || alternatePort < 1 || alternatePort > 65535) {
      throw new StunAddressError(`alternate port ${alternatePort} is not 1-65535`);
    }
    if (alternatePort === primary.port) {
      throw new StunAddressError(`the alternate port ${alternatePort} is the primary port`);
    }
  }
  if (alternateIp !== undefined) {
    let family: 4 | 6;
    try {
      family = familyOf({ hostname: alternateIp, port: 0 });
    } catch {
      throw new StunAddressError(`alternate address "${alternateIp}" is not an IP address`);
    }
    if (isWildcardIp(alternateIp)) {
      throw new StunAddressError(`the alternate address ${alternateIp} is a wildcard`);
    }
    if (family !== familyOf(primary)) {
      throw new StunAddressError(
        `the alternate address ${alternateIp} is not of the family of ${primary.hostname}`,
      );
    }
    if (sameIp(alternateIp, primary.hostname)) {
      throw new StunAddressError(`the alternate address ${alternateIp} is the primary address`);
    }
  }
}

/** Every address the server listens on, the primary first. */
export function listeningAddresses(addresses: StunServerAddresses): SocketAddress[] {
  const ips = [addresses.primary.hostname];
  if (addresses.alternateIp !== undefined) ips.push(addresses.alternateIp);
  const ports = [addresses.primary.port];
  if (addresses.alternatePort !== undefined) ports.push(addresses.alternatePort);
  return ips.flatMap((hostname) => ports.map((port) => ({ hostname, port })));
}

/** The other IP of the set (undefined without an alternate IP). */
function otherIp(addresses: StunServerAddresses, ip: string): string | undefined {
  if (addresses.alternateIp === undefined) return undefined;
  return sameIp(ip, addresses.primary.hostname)
    ? addresses.alternateIp
    : addresses.primary.hostname;
}

/** The other port of the set (undefined without an alternate port). */
function otherPort(addresses: StunServerAddresses, port: number): number | undefined {
  if (addresses.alternatePort === undefined) return undefined;
  return port === addresses.primary.port ? addresses.alternatePort : addresses.primary.port;
}

/**
 * Where the answer to a request that arrived on `receivedOn` leaves from, given its
 * CHANGE-REQUEST flags; undefined when the set has no address to change to.
 */
export function responseOrigin(
  addresses: StunServerAddresses,
  receivedOn: SocketAddress,
  changeIp: boolean,
  changePort: boolean,
): SocketAddress | undefined {
  const hostname = changeIp ? otherIp(addresses, receivedOn.hostname) : receivedOn.hostname;
  const port = changePort ? otherPort(addresses, receivedOn.port) : receivedOn.port;
  if (hostname === undefined || port === undefined) return undefined;
  return { hostname, port };
}

/**
 * OTHER-ADDRESS for a request that arrived on `receivedOn`: where "change IP and port" would
 * answer from (RFC 5780 §7.4), with only the alternate that exists changed; undefined for a
 * server without alternates or on a wildcard.
 */
export function otherAddress(
  addresses: StunServerAddresses,
  receivedOn: SocketAddress,
): SocketAddress | undefined {
  if (isWildcardIp(addresses.primary.hostname)) return undefined;
  if (addresses.alternateIp === undefined && addresses.alternatePort === undefined) {
    return undefined;
  }
  return {
    hostname: otherIp(addresses, receivedOn.hostname) ?? receivedOn.hostname,
    port: otherPort(addresses, receivedOn.port) ?? receivedOn.port,
  };
}
