/**
 * Real hosts on one machine: one network namespace per host, veth pairs
 * between them, iptables MASQUERADE for NAT routers. Needs root, `ip`
 * (iproute2) and `iptables`. Nothing is attached to the root namespace, so no
 * packet leaves the namespaces, and interface names only need to be unique per
 * namespace; namespace names carry a random suffix so runs never collide.
 *
 * Teardown order matters (the reverse has wedged the kernel): `destroy()`
 * stops every process first, then deletes the links inside each namespace,
 * and only then the namespaces. Always call it in `finally`.
 */
import { type Child, spawnChild, type StderrMode } from "./child.ts";
import { denoCommand } from "./deno_command.ts";
import { type ExecResult, rootCommand } from "./root_command.ts";
import { kill, KILL_GRACE_MS, sleep, TERM_GRACE_MS, terminate } from "./process_control.ts";

/** A host: a network namespace. */
export interface Host {
  /** The name given to `addHost`. */
  name: string;
  /** The namespace's name, for `ip netns exec`. */
  netns: string;
}

/** Addresses (CIDR) and interface names of a veth pair; names default to `v-<peer>`. */
export interface LinkOptions {
  aAddress?: string;
  bAddress?: string;
  aName?: string;
  bName?: string;
}

/** A veth pair: `aName` is in host `a`, `bName` in host `b`. */
export interface Link {
  a: Host;
  b: Host;
  aName: string;
  bName: string;
}

/** Options for commands run in a host. */
export interface RunOptions {
  /** Run as this uid/gid (with no supplementary groups) via `setpriv`; default root. */
  user?: number;
  /** Capabilities (e.g. `net_admin`) removed from the bounding set via `setpriv`. */
  withoutCapabilities?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** `exec` only: kill the command after this long and throw (default 30 s). */
  timeoutMs?: number;
  /** `spawn` only: what becomes of the process's stderr (default `inherit`). */
  stderr?: StderrMode;
}

const MAX_INTERFACE_NAME = 15;

/** A set of namespaces, links and processes, torn down together by `destroy()`. */
export class Topology {
  /** Prefix plus a random suffix; every namespace name starts with it. */
  readonly id: string;
  readonly #hosts = new Map<string, Host>();
  readonly #processes = new Set<Deno.ChildProcess>();
  #destroying: Promise<void> | undefined;

  private constructor(id: string) {
    this.id = id;
  }

  /** A new, empty topology whose namespaces are named `<prefix>-<4 hex>-<host>`. Needs root. */
  static create(prefix: string): Promise<Topology> {
    if (!/^[a-z][a-z0-9]{0,11}$/.test(prefix)) {
      throw new Error(`invalid topology prefix "${prefix}": use 1-12 of a-z 0-9`);
    }
    if (Deno.uid() !== 0) {
      throw new Error("network namespaces need root (ip netns, veth, iptables)");
    }
    const suffix = crypto.getRandomValues(new Uint8Array(2));
    const hex = Array.from(suffix, (b) => b.toString(16).padStart(2, "0")).join("");
    return Promise.resolve(new Topology(`${prefix}-${hex}`));
  }

  /** The hosts added so far. */
  get hosts(): Host[] {
    return [...this.#hosts.values()];
  }

  /** Adds a host (a namespace with loopback up). */
  async addHost(name: string): Promise<Host> {
    this.#checkOpen();
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name) || this.#hosts.has(name)) {
      throw new Error(`invalid or duplicate host name "${name}" in topology ${this.id}`);
    }
    const host = { name, netns: `${this.id}-${name}` };
    await this.#ip(["netns", "add", host.netns]);
    this.#hosts.set(name, host);
    await this.#ip(["-n", host.netns, "link", "set", "lo", "up"]);
    return host;
  }

  /** Connects two hosts with a veth pair, addresses it and brings both ends up. */
  async link(a: Host, b: Host, options: LinkOptions = {}): Promise<Link> {
    this.#checkOpen();
    const aName = interfaceName(options.aName ?? `v-${b.name}`);
    const bName = interfaceName(options.bName ?? `v-${a.name}`);
    await this.#ip(
      [
        "-n",
        a.netns,
        "link",
        "add",
        aName,
        "type",
        "veth",
        "peer",
        "name",
        bName,
        "netns",
        b.netns,
      ],
    );
    const ends = [[a, aName, options.aAddress], [b, bName, options.bAddress]] as const;
    for (const [host, name, address] of ends) {
      if (address) {
        // IPv6 duplicate address detection would delay the address by seconds.
        const nodad = address.includes(":") ? ["nodad"] : [];
        await this.#ip(["-n", host.netns, "addr", "add", address, "dev", name, ...nodad]);
      }
      await this.#ip(["-n", host.netns, "link", "set", name, "up"]);
    }
    return { a, b, aName, bName };
  }

  /** Adds a route in `host`: `to` is a prefix or `default`, `via` a gateway address. */
  async route(host: Host, to: string, via: string): Promise<void> {
    this.#checkOpen();
    await this.#ip(["-n", host.netns, "route", "add", to, "via", via]);
  }

  /** Turns `host` into a router: IPv4 and IPv6 forwarding on. */
  async forwarding(host: Host): Promise<void> {
    for (const key of ["ipv4/ip_forward", "ipv6/conf/all/forwarding"]) {
      await this.#must(host, ["sh", "-c", `echo 1 > /proc/sys/net/${key}`]);
    }
  }

  /**
   * Makes `router` a NAT: forwarding on and MASQUERADE for everything leaving
   * `outside`. `randomPorts` (`--random-fully`) makes the mapping port-random
   * per destination, like a symmetric NAT; without it Linux keeps source
   * ports when free (endpoint-independent mapping). `dropUnsolicited` makes it
   * drop unsolicited packets addressed to itself on `outside`, as home routers
   * do (hole punching through plain MASQUERADE deadlocks without it: see
   * lib/netns/nat_lab.ts).
   */
  async nat(
    router: Host,
    options: { inside: string; outside: string; randomPorts?: boolean; dropUnsolicited?: boolean },
  ): Promise<void> {
    await this.forwarding(router);
    const random = options.randomPorts ? ["--random-fully"] : [];
    const { inside, outside } = options;
    await this.#must(
      router,
      ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", outside, "-j", "MASQUERADE", ...random],
    );
    // Like a home router: only replies to inside-initiated flows cross inward.
    await this.#must(router, [
      ...["iptables", "-A", "FORWARD", "-i", outside, "-o", inside],
      ...["-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED", "-j", "DROP"],
    ]);
    if (options.dropUnsolicited) {
      await this.#must(router, [
        ...["iptables", "-A", "INPUT", "-i", outside],
        ...["-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP"],
      ]);
    }
  }

  /** Runs `command` in `host` to completion (killed after `timeoutMs`). */
  async exec(host: Host, command: string[], options: RunOptions = {}): Promise<ExecResult> {
    this.#checkOpen();
    const timeoutMs = options.timeoutMs ?? 30_000;
    const process = new Deno.Command("ip", {
      args: this.#argv(host, command, options),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#processes.add(process);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    try {
      timer = setTimeout(() => {
        timedOut = true;
        kill(process, "SIGKILL");
      }, timeoutMs);
      const output = await process.output();
      if (timedOut) {
        throw new Error(`${command.join(" ")} in ${host.netns} took over ${timeoutMs} ms`);
      }
      const decoder = new TextDecoder();
      return {
        code: output.code,
        stdout: decoder.decode(output.stdout),
        stderr: decoder.decode(output.stderr),
      };
    } finally {
      clearTimeout(timer);
      this.#processes.delete(process);
    }
  }

  /** Starts a long-running `command` in `host`; `destroy()` stops it if the caller does not. */
  spawn(host: Host, command: string[], options: RunOptions = {}): Child {
    this.#checkOpen();
    const child = spawnChild("ip", this.#argv(host, command, options), { stderr: options.stderr });
    this.#processes.add(child.process);
    child.process.status.finally(() => this.#processes.delete(child.process));
    return child;
  }

  /** Runs a Deno script in `host` to completion (see `denoCommand`). */
  execDeno(
    host: Host,
    script: string | URL,
    args: string[] = [],
    options: RunOptions = {},
  ): Promise<ExecResult> {
    return this.exec(host, denoCommand(script, args), options);
  }

  /** Starts a long-running Deno script in `host` (see `denoCommand`). */
  spawnDeno(
    host: Host,
    script: string | URL,
    args: string[] = [],
    options: RunOptions = {},
  ): Child {
    return this.spawn(host, denoCommand(script, args), options);
  }

  /**
   * Tears everything down, in this order: (1) every process started here
   * (SIGTERM, wait, SIGKILL, wait) and any other process still inside one of
   * the namespaces (by pid: only this run can have put it there); (2) every
   * link (TUN, veth) inside each namespace; (3) the namespaces. A namespace
   * whose processes will not die is left in place and reported. Idempotent.
   */
  destroy(): Promise<void> {
    this.#destroying ??= this.#destroy();
    return this.#destroying;
  }

  async #destroy(): Promise<void> {
    const problems: string[] = [];
    await Promise.all([...this.#processes].map((process) => terminate(process)));
    const hosts = [...this.#hosts.values()];
    const stuck = new Set<string>();
    for (const host of hosts) {
      if (!(await this.#emptyNamespace(host))) stuck.add(host.netns);
    }
    for (const host of hosts) {
      if (stuck.has(host.netns)) continue;
      for (const name of await this.#links(host)) {
        const result = await rootCommand(["ip", "-n", host.netns, "link", "del", name]);
        // The peer of a veth deleted from the other side is already gone.
        if (result.code !== 0 && !/Cannot find device/.test(result.stderr)) {
          problems.push(`deleting ${name} in ${host.netns}: ${result.stderr.trim()}`);
        }
      }
    }
    for (const host of hosts) {
      if (stuck.has(host.netns)) {
        problems.push(`${host.netns} still has processes; namespace left in place`);
        continue;
      }
      const result = await rootCommand(["ip", "netns", "del", host.netns]);
      if (result.code !== 0) problems.push(`deleting ${host.netns}: ${result.stderr.trim()}`);
    }
    if (problems.length > 0) {
      throw new Error(`destroying topology ${this.id}:\n  ${problems.join("\n  ")}`);
    }
  }

  /** Stops stray processes left in `host`'s namespace; false if some survive SIGKILL. */
  async #emptyNamespace(host: Host): Promise<boolean> {
    for (const [signal, graceMs] of [["TERM", TERM_GRACE_MS], ["KILL", KILL_GRACE_MS]] as const) {
      const pids = await this.#pids(host);
      if (pids.length === 0) return true;
      for (const pid of pids) {
        try {
          Deno.kill(Number(pid), `SIG${signal}`);
        } catch {
          // Exited meanwhile.
        }
      }
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && (await this.#pids(host)).length > 0) await sleep(50);
    }
    return (await this.#pids(host)).length === 0;
  }

  async #pids(host: Host): Promise<string[]> {
    const result = await rootCommand(["ip", "netns", "pids", host.netns]);
    return result.stdout.split(/\s+/).filter((pid) => /^\d+$/.test(pid));
  }

  /** Names of every link in `host` except loopback. */
  async #links(host: Host): Promise<string[]> {
    const result = await rootCommand(["ip", "-n", host.netns, "-o", "link", "show"]);
    return result.stdout.split("\n")
      .map((line) => /^\d+: ([^:@\s]+)/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined && name !== "lo");
  }

  #argv(host: Host, command: string[], options: RunOptions): string[] {
    const setpriv: string[] = [];
    if (options.user !== undefined) {
      setpriv.push(`--reuid=${options.user}`, `--regid=${options.user}`, "--clear-groups");
    }
    if (options.withoutCapabilities?.length) {
      const drop = options.withoutCapabilities.map((name) => `-${name}`).join(",");
      setpriv.push("--bounding-set", drop, "--inh-caps", drop);
    }
    const user = setpriv.length > 0 ? ["setpriv", ...setpriv, "--"] : [];
    const env = Object.entries(options.env ?? {}).map(([key, value]) => `${key}=${value}`);
    const withEnv = env.length > 0 ? ["env", ...env] : [];
    return ["netns", "exec", host.netns, ...user, ...withEnv, ...command];
  }

  async #must(host: Host, command: string[]): Promise<void> {
    const result = await this.exec(host, command);
    if (result.code !== 0) {
      throw new Error(
        `${command.join(" ")} in ${host.netns} failed (exit ${result.code}): ${result.stderr}`,
      );
    }
  }

  async #ip(args: string[]): Promise<void> {
    this.#checkOpen();
    const result = await rootCommand(["ip", ...args]);
    if (result.code !== 0) {
      throw new Error(`ip ${args.join(" ")} failed (exit ${result.code}): ${result.stderr.trim()}`);
    }
  }

  #checkOpen(): void {
    if (this.#destroying) throw new Error(`topology ${this.id} is destroyed`);
  }
}

function interfaceName(name: string): string {
  const short = name.slice(0, MAX_INTERFACE_NAME);
  if (!/^[A-Za-z0-9_.-]+$/.test(short)) throw new Error(`invalid interface name "${name}"`);
  return short;
}
