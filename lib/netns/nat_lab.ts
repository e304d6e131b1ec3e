/**
 * NAT labs for hole-punching tests: sites behind routers that behave like the
 * NATs of RFC 4787 (mapping and filtering kinds), all reachable through one
 * `internet` host, plus a `relay` host with two public addresses (for
 * RFC 5780-style "change IP" probes).
 *
 * Layout (nothing is attached to the root namespace):
 * - `internet` routes between public /24s of 198.18.0.0/15, without NAT;
 * - `relay` is 198.18.1.2 and 198.18.1.3 on 198.18.1.0/24;
 * - site `i` has the public 198.18.(10+i).0/24: its router's WAN is
 *   198.18.(10+i).2 and its hosts are on the LAN 10.(10+i).0.0/24 (router
 *   10.(10+i).0.1, hosts .2, .3, …); a `double` site has a carrier segment
 *   100.64.(10+i).0/24 between its outer (carrier) and home routers; a `none`
 *   site's hosts are on the public /24 themselves.
 *
 * Every NAT keeps source ports when free (plain MASQUERADE), except the
 * symmetric one. Every router except `bare-masquerade` drops unsolicited
 * packets addressed to itself on its WAN, like a home router: without that
 * rule Linux conntrack records a peer's early punch as a flow to the router
 * itself, and the inside host's own punch is then mapped to another port.
 */
import { type Host, Topology } from "./topology.ts";

/** How a site reaches the internet: the RFC 4787 behaviour its router models. */
export type NatKind =
  /** The host has a public address and is routed; no NAT, no firewall. */
  | "none"
  /** Endpoint-independent mapping and filtering: MASQUERADE plus DNAT of all inbound UDP to the first host. */
  | "full-cone"
  /** Endpoint-independent mapping, address-dependent filtering (xt_recent admits IPs the LAN sent to). */
  | "restricted-cone"
  /** Endpoint-independent mapping, address-and-port-dependent filtering (conntrack only). */
  | "port-restricted-cone"
  /** Address-and-port-dependent mapping (MASQUERADE --random-fully) and filtering. */
  | "symmetric"
  /** A port-restricted-cone home router behind a port-restricted-cone carrier router. */
  | "double"
  /** Plain MASQUERADE without the WAN INPUT drop: a naive router whose conntrack records punches to itself. */
  | "bare-masquerade";

/** One site of a lab. */
export interface SiteSpec {
  kind: NatKind;
  /** Hosts on the site's LAN (default 1); full and restricted cones forward inbound UDP to the first. */
  hosts?: number;
}

/** A built site. `publicAddress` changes with {@link readdress}. */
export interface Site {
  /** `s<index>`: the prefix of its hosts' names. */
  name: string;
  kind: NatKind;
  /** The router on the internet: the outer (carrier) router of a `double` site; null for `none`. */
  router: Host | null;
  /** Every router, from the internet inward (`[carrier, home]` for `double`); empty for `none`. */
  routers: Host[];
  hosts: Host[];
  /** The hosts' own addresses, in the order of `hosts`. */
  hostAddresses: string[];
  /** The address the internet sees: the (outer) router's WAN address, or the first host's own. */
  publicAddress: string;
  /** The interface holding `publicAddress`: the (outer) router's WAN, or the `none` host's. */
  wan: string;
}

/** A built lab; destroy it with `net.destroy()` in `finally`. */
export interface NatLab {
  net: Topology;
  /** Routes between the public /24s; no route to any private network. */
  internet: Host;
  relay: Host;
  /** 198.18.1.2. */
  relayAddress: string;
  /** 198.18.1.3: a second address of the relay, on the same interface. */
  relayAltAddress: string;
  sites: Site[];
}

/** The WAN interface of every router (and the interface of every LAN host). */
const WAN = "wan";
const HOST_INTERFACE = "eth0";
const MAX_SITES = 200;

/**
 * Builds a lab of `sites` (see the module doc for addresses). Namespaces are
 * named `<prefix>-<4 hex>-<host>`; on failure the partial lab is destroyed
 * before the error propagates.
 */
export async function createNatLab(prefix: string, sites: SiteSpec[]): Promise<NatLab> {
  if (sites.length > MAX_SITES) throw new Error(`a NAT lab holds at most ${MAX_SITES} sites`);
  const net = await Topology.create(prefix);
  try {
    const [internet, relay] = await Promise.all([net.addHost("internet"), net.addHost("relay")]);
    await net.forwarding(internet);
    await net.link(relay, internet, {
      aName: HOST_INTERFACE,
      bName: "relay",
      aAddress: "198.18.1.2/24",
      bAddress: "198.18.1.1/24",
    });
    await must(net, relay, ["ip", "addr", "add", "198.18.1.3/24", "dev", HOST_INTERFACE]);
    await net.route(relay, "default", "198.18.1.1");
    // Settled, not raced: a failing site must not leave others building during teardown.
    const settled = await Promise.allSettled(
      sites.map((spec, index) => buildSite(net, internet, spec, index)),
    );
    const failed = settled.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    const built = settled.map((result) => (result as PromiseFulfilledResult<Site>).value);
    return {
      net,
      internet,
      relay,
      relayAddress: "198.18.1.2",
      relayAltAddress: "198.18.1.3",
      sites: built,
    };
  } catch (error) {
    await net.destroy().catch((cleanup) => {
      throw new AggregateError([error, cleanup], `building the NAT lab ${net.id} failed`);
    });
    throw error;
  }
}

async function buildSite(
  net: Topology,
  internet: Host,
  spec: SiteSpec,
  index: number,
): Promise<Site> {
  const count = spec.hosts ?? 1;
  // Up to .101, below the addresses readdress hands out (.200 on).
  if (!Number.isInteger(count) || count < 1 || count > 100) {
    throw new Error(`site ${index}: hosts must be an integer from 1 to 100, not ${count}`);
  }
  const name = `s${index}`;
  const publicNet = `198.18.${10 + index}`;
  const lanNet = `10.${10 + index}.0`;
  const hosts = await Promise.all(
    Array.from({ length: count }, (_, j) => net.addHost(`${name}h${j}`)),
  );
  const base = { name, kind: spec.kind, hosts, wan: WAN };

  if (spec.kind === "none") {
    const hostAddresses = await attachLan(net, internet, name, publicNet, hosts);
    return {
      ...base,
      router: null,
      routers: [],
      hostAddresses,
      publicAddress: hostAddresses[0],
      wan: HOST_INTERFACE,
    };
  }

  const router = await net.addHost(`${name}r`);
  await net.link(router, internet, {
    aName: WAN,
    bName: name,
    aAddress: `${publicNet}.2/24`,
    bAddress: `${publicNet}.1/24`,
  });
  await net.route(router, "default", `${publicNet}.1`);
  const routers = [router];
  let lanRouter = router;
  if (spec.kind === "double") {
    const home = await net.addHost(`${name}g`);
    const carrierNet = `100.64.${10 + index}`;
    await net.link(home, router, {
      aName: WAN,
      bName: "cgn",
      aAddress: `${carrierNet}.2/24`,
      bAddress: `${carrierNet}.1/24`,
    });
    await net.route(home, "default", `${carrierNet}.1`);
    await natRules(net, router, { kind: "port-restricted-cone", inside: "cgn", list: "" });
    routers.push(home);
    lanRouter = home;
  }
  const hostAddresses = await attachLan(net, lanRouter, "lan", lanNet, hosts);
  await natRules(net, lanRouter, {
    kind: spec.kind === "double" ? "port-restricted-cone" : spec.kind,
    inside: "lan",
    firstHost: hostAddresses[0],
    list: `ztna-${name}`,
  });
  return { ...base, router, routers, hostAddresses, publicAddress: `${publicNet}.2` };
}

/**
 * Puts `hosts` on a bridge `bridge` in `gateway` (address `<net>.1/24`), hosts
 * at `<net>.2`, `<net>.3`, … with `gateway` as their default route; returns
 * the hosts' addresses.
 */
async function attachLan(
  net: Topology,
  gateway: Host,
  bridge: string,
  subnet: string,
  hosts: Host[],
): Promise<string[]> {
  await must(net, gateway, ["ip", "link", "add", bridge, "type", "bridge"]);
  // The bridge is a switch: LAN-to-LAN frames do not pass the router's iptables.
  await must(net, gateway, [
    "sh",
    "-c",
    "f=/proc/sys/net/bridge/bridge-nf-call-iptables; [ ! -e $f ] || echo 0 > $f",
  ]);
  await must(net, gateway, ["ip", "addr", "add", `${subnet}.1/24`, "dev", bridge]);
  await must(net, gateway, ["ip", "link", "set", bridge, "up"]);
  const addresses: string[] = [];
  for (const [j, host] of hosts.entries()) {
    const address = `${subnet}.${j + 2}`;
    const link = await net.link(host, gateway, {
      aName: HOST_INTERFACE,
      bName: `${bridge}p${j}`,
      aAddress: `${address}/24`,
    });
    await must(net, gateway, ["ip", "link", "set", link.bName, "master", bridge]);
    await net.route(host, "default", `${subnet}.1`);
    addresses.push(address);
  }
  return addresses;
}

/** The NAT and filter rules of one router; `inside` is its LAN-side interface. */
async function natRules(
  net: Topology,
  router: Host,
  options: {
    kind: Exclude<NatKind, "none" | "double">;
    inside: string;
    firstHost?: string;
    list: string;
  },
): Promise<void> {
  const { kind, inside, firstHost, list } = options;
  await net.forwarding(router);
  const iptables = (...args: string[]) => must(net, router, ["iptables", ...args]);
  const random = kind === "symmetric" ? ["--random-fully"] : [];
  await iptables("-t", "nat", "-A", "POSTROUTING", "-o", WAN, "-j", "MASQUERADE", ...random);
  await iptables(
    ...["-A", "FORWARD", "-i", WAN, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"],
    ...["-j", "ACCEPT"],
  );
  if (kind === "full-cone" || kind === "restricted-cone") {
    if (!firstHost) throw new Error(`a ${kind} router needs an inside host`);
    // Only addresses the LAN sent to (restricted cone), or anyone (full cone), get in.
    const admit = kind === "restricted-cone" ? ["-m", "recent", "--name", list, "--rcheck"] : [];
    if (kind === "restricted-cone") {
      await iptables(
        ...["-A", "FORWARD", "-i", inside, "-o", WAN, "-m", "recent", "--name", list],
        ...["--set", "--rdest"],
      );
      admit.push("--rsource");
    }
    // DNAT keeps the port: it is the host's own, as MASQUERADE keeps source ports when free.
    await iptables(
      ...["-t", "nat", "-A", "PREROUTING", "-i", WAN, "-p", "udp", ...admit],
      ...["-j", "DNAT", "--to-destination", firstHost],
    );
    await iptables(
      ...["-A", "FORWARD", "-i", WAN, "-o", inside, "-p", "udp", "-d", firstHost],
      ...["-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"],
    );
  }
  await iptables("-A", "FORWARD", "-i", WAN, "-j", "DROP");
  if (kind !== "bare-masquerade") {
    // Dropped before conntrack confirms it, an unsolicited packet leaves no entry behind.
    await iptables(
      ...["-A", "INPUT", "-i", WAN, "-m", "conntrack", "--ctstate", "NEW,INVALID"],
      ...["-j", "DROP"],
    );
  }
}

/** The iptables comment marking the rules of `blackhole(lab, a, b)`. */
function blackholeComment(a: Site, b: Site): string {
  const [first, second] = [a.name, b.name].sort();
  return `ztna-blackhole-${first}-${second}`;
}

/**
 * Drops UDP between the public addresses of sites `a` and `b` (both ways) on
 * the internet host, so the two can only talk through the relay. Idempotent;
 * {@link unblackhole} removes exactly these rules.
 */
export async function blackhole(lab: NatLab, a: Site, b: Site): Promise<void> {
  if (a === b) throw new Error(`blackhole: ${a.name} and ${b.name} are the same site`);
  const comment = blackholeComment(a, b);
  for (const [from, to] of [[a, b], [b, a]]) {
    const rule = [
      ...["FORWARD", "-p", "udp", "-s", from.publicAddress, "-d", to.publicAddress],
      ...["-m", "comment", "--comment", comment, "-j", "DROP"],
    ];
    const present = await lab.net.exec(lab.internet, ["iptables", "-C", ...rule]);
    if (present.code !== 0) await must(lab.net, lab.internet, ["iptables", "-I", ...rule]);
  }
}

/** Removes the rules of {@link blackhole} between `a` and `b` (none is fine). */
export async function unblackhole(lab: NatLab, a: Site, b: Site): Promise<void> {
  const comment = blackholeComment(a, b);
  const rules = await lab.net.exec(lab.internet, ["iptables", "-S", "FORWARD"]);
  if (rules.code !== 0) throw new Error(`iptables -S in ${lab.internet.netns}: ${rules.stderr}`);
  for (const line of rules.stdout.split("\n")) {
    if (!line.includes(`--comment ${comment} `)) continue;
    // `-A FORWARD <spec>` as listed; the spec has no quoted words (the comment has no spaces).
    const spec = line.trim().split(/\s+/).slice(1);
    await must(lab.net, lab.internet, ["iptables", "-D", ...spec]);
  }
}

/**
 * Forgets every flow (and so every mapping) on the site's routers, as a NAT
 * reboot would: `conntrack -F` (Debian package `conntrack`). A `none` site has
 * nothing to flush.
 */
export async function flushConntrack(lab: NatLab, site: Site): Promise<void> {
  for (const router of site.routers) {
    const result = await lab.net.exec(router, ["conntrack", "-F"]);
    if (result.code !== 0) {
      throw new Error(
        `conntrack -F in ${router.netns} failed (exit ${result.code}; is the conntrack tool ` +
          `installed?): ${result.stderr.trim()}`,
      );
    }
  }
}

/**
 * Gives the site a new public address in its /24 (.200, then .201, …), like
 * an ISP renumbering the router: MASQUERADE forgets the old address's flows,
 * so every mapping changes. Updates and returns `site.publicAddress` (and, for
 * a `none` site, its first host's address).
 */
export async function readdress(lab: NatLab, site: Site): Promise<string> {
  const holder = site.router ?? site.hosts[0];
  const octets = site.publicAddress.split(".");
  const last = Number(octets[3]);
  const next = last < 200 ? 200 : last + 1;
  if (next > 254) throw new Error(`readdress: ${site.name} has no free public address left`);
  const fresh = [...octets.slice(0, 3), String(next)].join(".");
  const gateway = [...octets.slice(0, 3), "1"].join(".");
  const { net } = lab;
  // Deleting a primary address would otherwise delete its secondaries too.
  await must(net, holder, [
    "sh",
    "-c",
    `echo 1 > /proc/sys/net/ipv4/conf/${site.wan}/promote_secondaries`,
  ]);
  await must(net, holder, ["ip", "addr", "add", `${fresh}/24`, "dev", site.wan]);
  await must(net, holder, ["ip", "addr", "del", `${site.publicAddress}/24`, "dev", site.wan]);
  await must(net, holder, ["ip", "route", "replace", "default", "via", gateway]);
  if (site.router === null) site.hostAddresses[0] = fresh;
  site.publicAddress = fresh;
  return fresh;
}

async function must(net: Topology, host: Host, command: string[]): Promise<void> {
  const result = await net.exec(host, command);
  if (result.code !== 0) {
    throw new Error(
      `${command.join(" ")} in ${host.netns} failed (exit ${result.code}): ${result.stderr.trim()}`,
    );
  }
}
