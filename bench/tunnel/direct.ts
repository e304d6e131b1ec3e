/**
 * The two baseline paths, in one pair of namespaces: "agent" and "service"
 * joined by a veth pair. First iperf3/ping straight over the veth (the
 * ceiling), then over a wireguard-go tunnel between the same namespaces.
 *
 * @module
 */
import { destroyOnInterrupt, throwIfInterrupted } from "./interrupt.ts";
import { type MeasureOptions, measurePath, startIperf3Server } from "./measure.ts";
import { notMeasured, type PathResult } from "./result.ts";
import { type Host, Topology } from "./support.ts";
import { startWireguard } from "./wireguard.ts";

/** Table labels of the two baseline paths. */
export const VETH = "raw veth";
export const WIREGUARD = "wireguard-go";

const AGENT_VETH = "10.99.0.1", SERVICE_VETH = "10.99.0.2";
const AGENT_WG = "10.98.0.1", SERVICE_WG = "10.98.0.2";

/** Measures the raw veth path, then wireguard-go over it; always tears the namespaces down. */
export async function benchDirect(options: MeasureOptions): Promise<PathResult[]> {
  const net = await Topology.create("zbench");
  const dir = await Deno.makeTempDir({ prefix: "ztna-bench-wg-" });
  const release = destroyOnInterrupt(net);
  try {
    throwIfInterrupted();
    const [agent, service] = await Promise.all([net.addHost("agent"), net.addHost("service")]);
    await net.link(agent, service, {
      aAddress: `${AGENT_VETH}/24`,
      bAddress: `${SERVICE_VETH}/24`,
    });
    await startIperf3Server(net, service);
    const veth = await measurePath(VETH, net, agent, SERVICE_VETH, options);
    return [veth, await benchWireguard(net, agent, service, dir, options)];
  } finally {
    try {
      await net.destroy();
    } finally {
      release();
      await Deno.remove(dir, { recursive: true });
    }
  }
}

/** wireguard-go between `agent` and `service` over their veth; a setup failure is a table note. */
async function benchWireguard(
  net: Topology,
  agent: Host,
  service: Host,
  dir: string,
  options: MeasureOptions,
): Promise<PathResult> {
  try {
    // The UAPI socket path is global: names carry the topology's random suffix.
    const suffix = net.id.split("-")[1];
    await startWireguard(
      net,
      { host: agent, ifname: `wg${suffix}a`, address: `${AGENT_WG}/24`, underlay: AGENT_VETH },
      {
        host: service,
        ifname: `wg${suffix}s`,
        address: `${SERVICE_WG}/24`,
        underlay: SERVICE_VETH,
      },
      dir,
    );
  } catch (error) {
    throwIfInterrupted();
    return notMeasured(WIREGUARD, error);
  }
  return await measurePath(WIREGUARD, net, agent, SERVICE_WG, options);
}
