/**
 * The plan of RFC 5780 NAT-behaviour tests: which Binding requests to send where, from which
 * socket, with which CHANGE-REQUEST flags, and where each answer must come from. Pure, like
 * Tailscale's netcheck plan: running it (sockets, retransmissions, timeouts) is separate, and
 * its answers go into the `NatObservations` field each request names.
 */
import type { SocketAddress } from "../net/address.ts";
import { sameIp, sameSocketAddress } from "./socket_address.ts";

/** The `NatObservations` field a request's answer goes in. */
export type NatTestName =
  | "testI"
  | "testII"
  | "testIII"
  | "otherServer"
  | "filteringII"
  | "filteringIII";

/**
 * Which local socket sends a request. The mapping tests must share one socket (one mapping).
 * The filtering tests need a second, fresh one that sends only to the primary address: a
 * socket that has sent to the alternate address (tests II and III) has opened the NAT's filter
 * to it, and every filtering test would then look endpoint-independent.
 */
export type NatTestSocket = "mapping" | "filtering";

/** One Binding request to send. */
export interface PlannedRequest {
  /** Where its answer goes in `NatObservations`. */
  test: NatTestName;
  /** The local socket to send it from. */
  socket: NatTestSocket;
  /** Where to send it. */
  destination: SocketAddress;
  /** CHANGE-REQUEST "change IP" (send a CHANGE-REQUEST only if a flag is set). */
  changeIp: boolean;
  /** CHANGE-REQUEST "change port". */
  changePort: boolean;
  /** The source address a valid answer arrives from (else the server ignored CHANGE-REQUEST). */
  expectFrom: SocketAddress;
  /** What the request is for, in a few words. */
  purpose: string;
}

/** Extra requests beyond RFC 5780's. */
export interface NatPlanOptions {
  /**
   * A second STUN server at another IP, asked from the mapping socket: without an alternate
   * address it is the only way to see whether the mapping varies with the destination.
   */
  otherServer?: SocketAddress;
}

/**
 * The requests of RFC 5780 §4.3 and §4.4, in sending order. Test I comes first: it is also the
 * request that learns `otherAddress` (its answer's OTHER-ADDRESS), so a runner that has sent it
 * already skips it. Without an alternate address there is nothing to change to: the plan is
 * test I (and the other server, if given). Tests the alternate address cannot make meaningful
 * (one sharing the primary's IP or port) are left out. A runner may skip test III once test II
 * saw test I's address; the classifier reads whatever subset was answered.
 */
export function planNatTests(
  primary: SocketAddress,
  otherAddress?: SocketAddress,
  options: NatPlanOptions = {},
): PlannedRequest[] {
  const plan: PlannedRequest[] = [{
    test: "testI",
    socket: "mapping",
    destination: primary,
    changeIp: false,
    changePort: false,
    expectFrom: primary,
    purpose: "mapping test I: the mapped address and OTHER-ADDRESS",
  }];
  const other = otherAddress;
  const changesIp = other !== undefined && !sameIp(other.hostname, primary.hostname);
  const changesPort = other !== undefined && other.port !== primary.port;
  if (other && changesIp) {
    const alternateIp = { hostname: other.hostname, port: primary.port };
    plan.push({
      test: "testII",
      socket: "mapping",
      destination: alternateIp,
      changeIp: false,
      changePort: false,
      expectFrom: alternateIp,
      purpose: "mapping test II: alternate IP, primary port",
    });
  }
  if (other && (changesIp || changesPort)) {
    plan.push({
      test: "testIII",
      socket: "mapping",
      destination: other,
      changeIp: false,
      changePort: false,
      expectFrom: other,
      purpose: "mapping test III: alternate IP and port",
    });
  }
  if (options.otherServer && !sameSocketAddress(options.otherServer, primary)) {
    plan.push({
      test: "otherServer",
      socket: "mapping",
      destination: options.otherServer,
      changeIp: false,
      changePort: false,
      expectFrom: options.otherServer,
      purpose: "mapping as seen by another server",
    });
  }
  if (other && changesIp && changesPort) {
    plan.push({
      test: "filteringII",
      socket: "filtering",
      destination: primary,
      changeIp: true,
      changePort: true,
      expectFrom: other,
      purpose: "filtering test II: answer from the alternate IP and port",
    });
  }
  if (other && changesPort) {
    plan.push({
      test: "filteringIII",
      socket: "filtering",
      destination: primary,
      changeIp: false,
      changePort: true,
      expectFrom: { hostname: primary.hostname, port: other.port },
      purpose: "filtering test III: answer from the primary IP, alternate port",
    });
  }
  return plan;
}
