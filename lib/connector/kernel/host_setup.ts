/**
 * What the kernel mode needs from the host besides its TUN and its nftables table, all
 * checked or set on the TUN alone (its settings vanish with it; nothing host-wide changes):
 *
 * - on the TUN: IPv4 forwarding (packets from it may be routed on), `route_localnet` (so a
 *   packet from it to a loopback target, 127.0.0.1:8080, is delivered to the local socket
 *   instead of dropped as a martian, and the reply may leave by the TUN with a loopback
 *   source), and IPv6 off (the mode carries IPv4 only);
 * - for a target on another host: IPv4 forwarding on the interface its route leaves by
 *   (the replies come in there and are forwarded into the TUN). The connector does not turn
 *   it on; it refuses to start, naming the sysctl to set.
 */

/** A target the kernel mode cannot reach as the host is configured. */
export class KernelModeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KernelModeError";
  }
}

/** Writes `value` to the sysctl file `path` (under /proc/sys). */
async function writeSysctl(path: string, value: string): Promise<void> {
  try {
    await Deno.writeTextFile(`/proc/sys/${path}`, value);
  } catch (error) {
    throw new KernelModeError(`setting ${path} to ${value}: ${(error as Error).message}`);
  }
}

/** Sets the TUN's own sysctls (see the module comment). */
export async function configureTunSysctls(tun: string): Promise<void> {
  await writeSysctl(`net/ipv4/conf/${tun}/forwarding`, "1");
  await writeSysctl(`net/ipv4/conf/${tun}/route_localnet`, "1");
  await writeSysctl(`net/ipv6/conf/${tun}/disable_ipv6`, "1").catch(() => {
    // IPv6 disabled on the whole host: nothing to turn off.
  });
}

/** The interface the route to `address` leaves by (`lo` for the host's own addresses). */
export async function routeDevice(address: string): Promise<string> {
  const output = await new Deno.Command("ip", {
    args: ["-j", "route", "get", address],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.success ? output.stdout : output.stderr);
  if (!output.success) throw new KernelModeError(`no route to target ${address}: ${text.trim()}`);
  const [route] = JSON.parse(text) as { dev: string }[];
  return route.dev;
}

/**
 * Checks that every remote target's route leaves by an interface with IPv4 forwarding on;
 * throws a KernelModeError naming the target and the sysctl otherwise.
 */
export async function checkTargetRoutes(addresses: string[]): Promise<void> {
  for (const address of new Set(addresses)) {
    const device = await routeDevice(address);
    if (device === "lo") continue;
    const key = `net/ipv4/conf/${device}/forwarding`;
    const value = (await Deno.readTextFile(`/proc/sys/${key}`)).trim();
    if (value !== "1") {
      throw new KernelModeError(
        `kernel mode: target ${address} is reached by ${device}, whose IPv4 forwarding is ` +
          `off (replies could not reach the TUN): enable it with sysctl -w ` +
          `${key.replaceAll("/", ".")}=1 (or net.ipv4.ip_forward=1); ztna changes no ` +
          `host-wide setting`,
      );
    }
  }
}
