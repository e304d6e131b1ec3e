/** The addresses a socket sends from: its bound address, or each interface address for a wildcard. */
import { familyOf, type SocketAddress } from "../net/address.ts";
import { isWildcardIp } from "../stun/server_addresses.ts";

/** An interface address as `Deno.networkInterfaces()` lists it. */
export interface InterfaceAddress {
  family: "IPv4" | "IPv6";
  address: string;
}

/**
 * The source addresses of a socket bound to `bound`: itself for a specific IP; for 0.0.0.0
 * every IPv4 interface address, for `::` (dual-stack) every interface address, each with the
 * bound port. A test I answer equal to one of them means no NAT.
 */
export function sourceAddresses(
  bound: SocketAddress,
  interfaces: readonly InterfaceAddress[] = Deno.networkInterfaces(),
): SocketAddress[] {
  if (!isWildcardIp(bound.hostname)) return [bound];
  const ipv4Only = familyOf(bound) === 4;
  return interfaces
    .filter((entry) => !ipv4Only || entry.family === "IPv4")
    .map((entry) => ({ hostname: entry.address, port: bound.port }));
}
