/**
 * A wireguard-go tunnel between two namespaces: keys from `wg genkey` /
 * `wg pubkey`, one `wireguard-go --foreground` per namespace (started with
 * `ip netns exec`, so the TUN device is created in that namespace, and
 * tracked by the topology, which stops it before deleting links and
 * namespaces), configured with `wg set` and `ip`.
 *
 * @module
 */
import type { Child, Host, Topology } from "./support.ts";

/** One end of the tunnel. */
export interface WireguardEnd {
  host: Host;
  /** Interface name; wireguard-go's UAPI socket (/var/run/wireguard/NAME.sock) is global, so unique. */
  ifname: string;
  /** Address on the tunnel, CIDR, e.g. `10.98.0.1/24`. */
  address: string;
  /** Where the other end reaches this one's UDP socket (its underlay address). */
  underlay: string;
}

/** A private key's file and the public key that goes with it. */
interface Key {
  file: string;
  publicKey: string;
}

/** The default WireGuard UDP port of both ends (each in its own namespace). */
const LISTEN_PORT = 51820;

async function wg(args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command("wg", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const output = await child.output();
  if (!output.success) {
    throw new Error(`wg ${args.join(" ")}: ${new TextDecoder().decode(output.stderr).trim()}`);
  }
  return new TextDecoder().decode(output.stdout).trim();
}

async function must(net: Topology, host: Host, command: string[]): Promise<void> {
  const result = await net.exec(host, command);
  if (result.code !== 0) {
    throw new Error(`${command.join(" ")} in ${host.netns}: ${result.stderr.trim()}`);
  }
}

/** Waits until wireguard-go (`child`) has made `end`'s interface and its UAPI socket. */
async function waitForDevice(
  net: Topology,
  end: WireguardEnd,
  child: Child,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const link = await net.exec(end.host, ["ip", "link", "show", end.ifname]);
    const socket = await Deno.stat(`/var/run/wireguard/${end.ifname}.sock`).then(
      () => true,
      () => false,
    );
    if (link.code === 0 && socket) return;
    if (Date.now() > deadline) {
      const stderr = child.stderr?.tail().join("\n  ") ?? "";
      throw new Error(
        `wireguard-go made no ${end.ifname} in ${end.host.netns} within ${timeoutMs} ms\n  ${stderr}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Brings up a WireGuard tunnel between `a` and `b` with the wireguard-go
 * `binary` (default Debian's) on UDP port `port` at both ends; key files go
 * to `dir`. Both processes belong to `net` (stopped by its `destroy()`); resolves
 * with them (their CPU time is measured).
 */
export async function startWireguard(
  net: Topology,
  a: WireguardEnd,
  b: WireguardEnd,
  dir: string,
  binary = "wireguard-go",
  port = LISTEN_PORT,
): Promise<Child[]> {
  const keys = await Promise.all([a, b].map(async (end): Promise<Key> => {
    const privateKey = await wg(["genkey"]);
    const file = `${dir}/${end.ifname}.key`;
    await Deno.writeTextFile(file, `${privateKey}\n`, { mode: 0o600 });
    return { file, publicKey: await wg(["pubkey"], privateKey) };
  }));
  const children = [a, b].map((end) =>
    net.spawn(end.host, [binary, "--foreground", end.ifname], {
      env: { WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "error" },
      stderr: "capture",
    })
  );
  await Promise.all([a, b].map((end, i) => waitForDevice(net, end, children[i])));
  const sides: [WireguardEnd, WireguardEnd, Key, Key][] = [
    [a, b, keys[0], keys[1]],
    [b, a, keys[1], keys[0]],
  ];
  for (const [self, other, own, theirs] of sides) {
    const otherIp = other.address.split("/")[0];
    await must(net, self.host, [
      ...["wg", "set", self.ifname, "private-key", own.file, "listen-port", String(port)],
      ...["peer", theirs.publicKey, "allowed-ips", `${otherIp}/32`],
      ...["endpoint", `${other.underlay}:${port}`],
    ]);
    await must(net, self.host, ["ip", "addr", "add", self.address, "dev", self.ifname]);
    await must(net, self.host, ["ip", "link", "set", self.ifname, "up"]);
  }
  return children;
}
