/**
 * The baseline paths, in one pair of namespaces: "agent" and "service"
 * joined by a veth pair. First iperf3/ping straight over the veth (the
 * ceiling), then over a wireguard-go tunnel between the same namespaces:
 * Debian's wireguard-go, then the newest one from the Go module proxy. Loss
 * is dropped on arrival in each namespace (INPUT, from the other end's veth
 * address): the raw path loses TCP segments, the tunnels their UDP packets.
 *
 * @module
 */
import { destroyOnInterrupt, throwIfInterrupted } from "./interrupt.ts";
import { LossRules } from "./loss.ts";
import { type MeasureOptions, measureUnderLoss, startIperf3Server } from "./measure.ts";
import { notMeasured, type PathResult } from "./result.ts";
import { type Child, type Host, Topology } from "./support.ts";
import { startWireguard } from "./wireguard.ts";
import { latestWireguardGo, wireguardVersion } from "./wireguard_latest.ts";

/** Table labels of the baseline paths. */
export const VETH = "raw veth";
export const WIREGUARD = "wireguard-go (Debian)";
export const WIREGUARD_LATEST = "wireguard-go (newest)";

const AGENT_VETH = "10.99.0.1", SERVICE_VETH = "10.99.0.2";
const AGENT_WG = ["10.98.0.1", "10.97.0.1"], SERVICE_WG = ["10.98.0.2", "10.97.0.2"];

/** Every loss level of `options`, each as a "not measured" result with `error`. */
function notMeasuredAtEachLevel(
  name: string,
  options: MeasureOptions,
  error: unknown,
): PathResult[] {
  return (options.losses ?? [0]).map((level) => notMeasured(name, error, level));
}

/**
 * Measures the raw veth path, then both wireguard-go builds over it, at each
 * loss level; always tears down.
 */
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
    const loss = new LossRules(net, [
      { host: agent, chain: "INPUT", match: ["-s", SERVICE_VETH] },
      { host: service, chain: "INPUT", match: ["-s", AGENT_VETH] },
    ]);
    const veth = await measureUnderLoss(VETH, net, agent, SERVICE_VETH, options, loss);
    const debian = await benchWireguard(net, agent, service, dir, options, loss, "wireguard-go", 0);
    const latest = await latestWireguardGo();
    const newest = latest instanceof Error
      ? notMeasuredAtEachLevel(WIREGUARD_LATEST, options, latest)
      : await benchWireguard(net, agent, service, dir, options, loss, latest, 1);
    return [...veth, ...debian, ...newest];
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
  loss: LossRules,
  binary: string,
  index: number,
): Promise<PathResult[]> {
  const name = index === 0 ? WIREGUARD : WIREGUARD_LATEST;
  let children: Child[];
  try {
    // The UAPI socket path is global: names carry the topology's random suffix.
    const suffix = `${net.id.split("-")[1]}${index}`;
    children = await startWireguard(
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
    return notMeasuredAtEachLevel(name, options, error);
  }
  const processes = children.map((child, i) => ({
    label: i === 0 ? "agent side" : "service side",
    pid: child.process.pid,
  }));
  const results = await measureUnderLoss(
    name,
    net,
    agent,
    SERVICE_WG[index],
    options,
    loss,
    undefined,
    processes,
  );
  results[0].notes.push(`version: ${await wireguardVersion(binary)}`);
  return results;
}
