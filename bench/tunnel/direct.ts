/**
 * The baseline paths, in one pair of namespaces: "agent" and "service"
 * joined by a veth pair. First iperf3/ping straight over the veth (the
 * ceiling), then over a wireguard-go tunnel between the same namespaces:
 * Debian's wireguard-go, then the newest one from the Go module proxy.
 *
 * @module
 */
import { destroyOnInterrupt, throwIfInterrupted } from "./interrupt.ts";
import { type MeasureOptions, measurePath, startIperf3Server } from "./measure.ts";
import { notMeasured, type PathResult } from "./result.ts";
import { type Host, Topology } from "./support.ts";
import { startWireguard } from "./wireguard.ts";
import { latestWireguardGo, wireguardVersion } from "./wireguard_latest.ts";

/** Table labels of the baseline paths. */
export const VETH = "raw veth";
export const WIREGUARD = "wireguard-go (Debian)";
export const WIREGUARD_LATEST = "wireguard-go (newest)";

const AGENT_VETH = "10.99.0.1", SERVICE_VETH = "10.99.0.2";
const AGENT_WG = ["10.98.0.1", "10.97.0.1"], SERVICE_WG = ["10.98.0.2", "10.97.0.2"];

/** Measures the raw veth path, then both wireguard-go builds over it; always tears down. */
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
    const debian = await benchWireguard(net, agent, service, dir, options, "wireguard-go", 0);
    const latest = await latestWireguardGo();
    const newest = latest instanceof Error
      ? notMeasured(WIREGUARD_LATEST, latest)
      : await benchWireguard(net, agent, service, dir, options, latest, 1);
    return [veth, debian, newest];
  } finally {
    try {
      await net.destroy();
    } finally {
      release();
      await Deno.remove(dir, { recursive: true });
    }
  }
}

/**
 * wireguard-go `binary` between `agent` and `service` over their veth, on
 * tunnel subnet number `index`; a setup failure is a table note.
 */
async function benchWireguard(
  net: Topology,
  agent: Host,
  service: Host,
  dir: string,
  options: MeasureOptions,
  binary: string,
  index: number,
): Promise<PathResult> {
  const name = index === 0 ? WIREGUARD : WIREGUARD_LATEST;
  try {
    // The UAPI socket path is global: names carry the topology's random suffix.
    const suffix = `${net.id.split("-")[1]}${index}`;
    await startWireguard(
      net,
      {
        host: agent,
        ifname: `wg${suffix}a`,
        address: `${AGENT_WG[index]}/24`,
        underlay: AGENT_VETH,
      },
      {
        host: service,
        ifname: `wg${suffix}s`,
        address: `${SERVICE_WG[index]}/24`,
        underlay: SERVICE_VETH,
      },
      dir,
      binary,
      51820 + index,
    );
  } catch (error) {
    throwIfInterrupted();
    return notMeasured(name, error);
  }
  const result = await measurePath(name, net, agent, SERVICE_WG[index], options);
  result.notes.push(`version: ${await wireguardVersion(binary)}`);
  return result;
}
