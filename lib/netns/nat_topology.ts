/**
 * The standard two-NAT topology: a relay on a "public" network, an agent and
 * a connector each behind its own NAT (iptables MASQUERADE).
 */
import { type Host, Topology } from "./topology.ts";

/** The fixed addresses of a {@link NatTopology}. */
export const NAT_ADDRESSES = {
  relay: "198.18.1.2",
  natAPublic: "198.18.2.2",
  natBPublic: "198.18.3.2",
  agent: "10.200.1.2",
  connector: "10.200.2.2",
} as const;

/** The NAT topology's hosts and addresses. */
export interface NatTopology {
  net: Topology;
  /** Routes between the public /24s; has no route to the private networks. */
  internet: Host;
  relay: Host;
  natA: Host;
  natB: Host;
  /** Behind `natA`. */
  agent: Host;
  /** Behind `natB`. */
  connector: Host;
  addresses: typeof NAT_ADDRESSES;
}

/** Options of {@link createNatTopology}. */
export interface NatTopologyOptions {
  /**
   * The NATs drop unsolicited packets addressed to themselves, like home
   * routers: agent and connector can then go direct. Default false: plain
   * MASQUERADE, where sessions stay on the relay.
   */
  homeRouters?: boolean;
}

/**
 * Builds: relay, natA and natB on "public" 198.18.0.0/15 subnets routed by an
 * `internet` host; agent on 10.200.1.0/24 behind natA, connector on
 * 10.200.2.0/24 behind natB (MASQUERADE on each NAT's public side). On
 * failure the partial topology is destroyed before the error propagates.
 */
export async function createNatTopology(
  prefix: string,
  options: NatTopologyOptions = {},
): Promise<NatTopology> {
  const net = await Topology.create(prefix);
  try {
    const [internet, relay, natA, natB, agent, connector] = await Promise.all(
      ["internet", "relay", "natA", "natB", "agent", "connector"].map((name) => net.addHost(name)),
    );
    await net.link(relay, internet, { aAddress: "198.18.1.2/24", bAddress: "198.18.1.1/24" });
    await net.link(natA, internet, { aAddress: "198.18.2.2/24", bAddress: "198.18.2.1/24" });
    await net.link(natB, internet, { aAddress: "198.18.3.2/24", bAddress: "198.18.3.1/24" });
    const a = await net.link(agent, natA, { aAddress: "10.200.1.2/24", bAddress: "10.200.1.1/24" });
    const b = await net.link(connector, natB, {
      aAddress: "10.200.2.2/24",
      bAddress: "10.200.2.1/24",
    });
    await net.forwarding(internet);
    await net.route(relay, "default", "198.18.1.1");
    await net.route(natA, "default", "198.18.2.1");
    await net.route(natB, "default", "198.18.3.1");
    await net.route(agent, "default", "10.200.1.1");
    await net.route(connector, "default", "10.200.2.1");
    const dropUnsolicited = options.homeRouters ?? false;
    await net.nat(natA, { inside: a.bName, outside: "v-internet", dropUnsolicited });
    await net.nat(natB, { inside: b.bName, outside: "v-internet", dropUnsolicited });
    return { net, internet, relay, natA, natB, agent, connector, addresses: NAT_ADDRESSES };
  } catch (error) {
    await net.destroy().catch((cleanup) => {
      throw new AggregateError([error, cleanup], `building the NAT topology ${net.id} failed`);
    });
    throw error;
  }
}
