/**
 * The kernel mode's netfilter rules: one nftables table of its own (`ip ztna_<tun>`), added
 * in one transaction at start and deleted in one at exit, and nothing else touched. The
 * connector rewrites each packet's destination to its forward target in user space, so the
 * rules need no DNAT; they are:
 *
 * - `from_tun` (prerouting, priority raw): a packet that enters from the TUN must come from
 *   the pool and go to a configured target (address, protocol, port; ICMP echo to a
 *   service's echo address); anything else is counted (counter `refused`) and dropped before
 *   conntrack sees it. User space already refuses such packets; this is the kernel's check
 *   of the same list.
 * - `to_tun` (forward): only replies (conntrack established/related) are forwarded into the
 *   TUN; anything else routed to the pool is counted and dropped.
 * - `source_nat` (postrouting, srcnat): pool sources leaving by another interface take that
 *   interface's address, so targets on other hosts answer to the connector. Targets on this
 *   host (loopback or its own addresses) are delivered locally and see the pool address.
 */

/** One destination the TUN's packets may reach. */
export interface AllowedTarget {
  /** IPv4 address, dotted. */
  address: string;
  protocol: "tcp" | "udp";
  port: number;
}

/** What the table is built from. */
export interface NatRuleInputs {
  /** The TUN interface's name. */
  tun: string;
  /** The pool prefix, `a.b.c.d/N`. */
  pool: string;
  targets: AllowedTarget[];
  /** Addresses ICMP echo requests may go to. */
  echo: string[];
}

/** The table's name for the TUN `tun` (unique: the TUN's name is held by one process). */
export function natTableName(tun: string): string {
  return `ztna_${tun.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

/**
 * The nft script that (re)creates the table: it first deletes a table of the same name (one
 * a killed connector with this TUN name left behind), all in one transaction.
 */
export function natRuleScript(inputs: NatRuleInputs): string {
  const table = natTableName(inputs.tun);
  const tun = JSON.stringify(inputs.tun);
  const allow = [
    ...inputs.targets.map((t) => `ip daddr ${t.address} ${t.protocol} dport ${t.port} accept`),
    ...inputs.echo.map((address) => `ip daddr ${address} icmp type echo-request accept`),
  ];
  return [
    `table ip ${table}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    `  counter refused {}`,
    `  chain from_tun {`,
    `    type filter hook prerouting priority raw; policy accept;`,
    `    iifname != ${tun} accept`,
    `    ip saddr != ${inputs.pool} counter name refused drop`,
    ...allow.map((rule) => `    ${rule}`),
    `    counter name refused drop`,
    `  }`,
    `  chain to_tun {`,
    `    type filter hook forward priority filter; policy accept;`,
    `    oifname ${tun} ct state established,related accept`,
    `    oifname ${tun} counter name refused drop`,
    `  }`,
    `  chain source_nat {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    ip saddr ${inputs.pool} oifname != ${tun} masquerade`,
    `  }`,
    `}`,
    "",
  ].join("\n");
}

/** An `nft` command that failed: its arguments and what it printed. */
export class NftError extends Error {
  constructor(readonly args: string[], readonly stderr: string) {
    super(`nft ${args.join(" ")} failed: ${stderr.trim() || "no output"}`);
    this.name = "NftError";
  }
}

/** Runs `nft` with `args` (and `input` on stdin); resolves with its stdout. */
async function nft(args: string[], input?: string): Promise<string> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("nft", {
      args,
      stdin: input === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw new NftError(args, `cannot run nft (install nftables): ${(error as Error).message}`);
  }
  if (input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  if (!output.success) throw new NftError(args, decoder.decode(output.stderr));
  return decoder.decode(output.stdout);
}

/** Creates (or replaces) the table of `inputs.tun`. */
export async function installNatRules(inputs: NatRuleInputs): Promise<void> {
  await nft(["-f", "-"], natRuleScript(inputs));
}

/** Deletes the table of `tun`. */
export async function removeNatRules(tun: string): Promise<void> {
  await nft(["delete", "table", "ip", natTableName(tun)]);
}

/** Packets the table of `tun` has dropped (its `refused` counter). */
export async function natRefusedPackets(tun: string): Promise<number> {
  const text = await nft(["-j", "list", "counter", "ip", natTableName(tun), "refused"]);
  const items = (JSON.parse(text) as { nftables: { counter?: { packets: number } }[] }).nftables;
  return items.find((item) => item.counter)?.counter?.packets ?? 0;
}
