/** Whether this platform can create the TUN device ztna asks for. */

/**
 * Why a TUN device named `name` cannot be created on operating system `os`
 * (a `Deno.build.os` value), or null when it can. Only Linux `/dev/net/tun`
 * is implemented; macOS `utun` is refused outright rather than half-supported.
 */
export function tunUnsupportedReason(os: string, name: string): string | null {
  if (os === "linux") return null;
  if (os === "darwin") {
    return `cannot create TUN device ${name}: macOS utun is not supported yet (ztna's TUN device ` +
      `needs Linux /dev/net/tun)`;
  }
  return `cannot create TUN device ${name}: TUN devices are supported on Linux only; ${os} is ` +
    `not supported yet`;
}
