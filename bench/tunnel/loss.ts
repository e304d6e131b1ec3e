/**
 * Random packet loss for the tunnel benchmark: iptables `-m statistic --mode
 * random` DROP rules (this kernel has no netem), one per direction, placed
 * where the path's packets are forwarded or received. Rules carry a comment
 * so `setLoss` can replace the previous level; the topology's namespaces take
 * them away when destroyed.
 *
 * @module
 */
import type { Host, Topology } from "./support.ts";

/** One place where a direction's packets are dropped: a host's chain and what to match there. */
export interface LossPoint {
  host: Host;
  chain: "INPUT" | "FORWARD";
  /** iptables match arguments, e.g. `["-p", "udp", "-s", "10.200.1.2"]`. */
  match: string[];
}

const COMMENT = ["-m", "comment", "--comment", "ztna-bench-loss"];

/** The rule's arguments after the chain, at `percent` % loss. */
function ruleArgs(point: LossPoint, percent: number): string[] {
  return [
    ...point.match,
    ...COMMENT,
    ...["-m", "statistic", "--mode", "random", "--probability", String(percent / 100)],
    ...["-j", "DROP"],
  ];
}

/** The loss levels of `--loss`: a comma-separated list of percentages in [0, 100). */
export function parseLossList(text: string): number[] {
  const levels = text.split(",").map((part) => Number(part.trim()));
  if (levels.length === 0 || levels.some((level) => !(level >= 0 && level < 100))) {
    throw new RangeError(
      `--loss: expected percentages in [0, 100) separated by commas, got "${text}"`,
    );
  }
  return [...new Set(levels)].sort((a, b) => a - b);
}

/** Sets the loss at every point to `percent` % (0: no rule), replacing the previous level. */
export class LossRules {
  readonly #net: Topology;
  readonly #points: LossPoint[];
  #percent = 0;

  constructor(net: Topology, points: LossPoint[]) {
    this.#net = net;
    this.#points = points;
  }

  /** Applies `percent` % random loss at each point. */
  async set(percent: number): Promise<void> {
    if (percent === this.#percent) return;
    for (const point of this.#points) {
      if (this.#percent > 0) await this.#iptables(point, "-D", this.#percent);
      if (percent > 0) await this.#iptables(point, "-I", percent);
    }
    this.#percent = percent;
  }

  async #iptables(point: LossPoint, action: "-I" | "-D", percent: number): Promise<void> {
    const command = ["iptables", action, point.chain, ...ruleArgs(point, percent)];
    const result = await this.#net.exec(point.host, command);
    if (result.code !== 0) {
      throw new Error(`${command.join(" ")} in ${point.host.netns}: ${result.stderr.trim()}`);
    }
  }
}
