/**
 * Creating and configuring a TUN interface with ioctls only (no `ip`, no
 * rtnetlink): every step here has a classic ioctl that Linux still supports
 * (`SIOCSIFADDR` on AF_INET6 and `SIOCADDRT` with `in6_rtmsg` included), so
 * there is no need for netlink message building. The one ioctl limit — a
 * second IPv4 address needs an alias label — is avoided by allowing only one.
 */
import { errno, libc, LINUX, syscallError } from "../../ffi/libc.ts";
import {
  IfReq,
  In6IfReq,
  In6RtMsg,
  RtEntry,
  SockaddrIn,
  TUN,
  TUN_OFFLOAD,
  tunLibc,
} from "../../ffi/tun.ts";
import { ipv4Netmask, type Prefix, type TunConfig } from "./config.ts";

const encoder = new TextEncoder();

/** An Error whose message starts with `context` and ends with the failed call's errno text. */
function failure(context: string, call: string, code = errno()): Error & { errno: number } {
  const cause = syscallError(call, code);
  return Object.assign(new Error(`${context}: ${cause.message}`, { cause }), { errno: code });
}

/** A zeroed `struct ifreq` naming `name`. */
function ifreq(name: string): Uint8Array {
  const request = new Uint8Array(IfReq.size);
  request.set(encoder.encode(name).subarray(0, TUN.IFNAMSIZ - 1), IfReq.name);
  return request;
}

/** An open TUN descriptor. */
export interface OpenedTun {
  fd: number;
  /** The name the kernel gave (it differs from the one asked for only for `%d` patterns). */
  name: string;
  /** The `TUN_F_*` offloads on (reads and writes carry a virtio header), or 0 for plain mode. */
  offloads: number;
}

/** The offload sets tried in turn, dropping one flag at a time; TSO needs TUN_F_CSUM. */
const OFFLOAD_CANDIDATES: readonly number[] = (() => {
  const { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_USO4, TUN_F_USO6 } = TUN_OFFLOAD;
  const tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  return [
    tcp | TUN_F_USO4 | TUN_F_USO6,
    tcp | TUN_F_USO4,
    tcp,
    TUN_F_CSUM | TUN_F_TSO4,
    TUN_F_CSUM,
  ];
})();

/**
 * Opens a TUN; with `offloads`, first with `IFF_VNET_HDR` and the largest set
 * of `TUNSETOFFLOAD` flags the kernel accepts, falling back to plain mode
 * (`offloads: 0`) when it refuses them all.
 */
export function openTunWithOffloads(name: string, offloads: boolean): OpenedTun {
  if (offloads) {
    const opened = openTunDevice(name, TUN_OFFLOAD.IFF_VNET_HDR, true);
    if (opened) {
      for (const flags of OFFLOAD_CANDIDATES) {
        const request = BigInt(TUN_OFFLOAD.TUNSETOFFLOAD);
        if (tunLibc().ioctlValue(opened.fd, request, BigInt(flags)) >= 0) {
          return { ...opened, offloads: flags };
        }
      }
      libc().close(opened.fd);
    }
  }
  return { ...openTun(name), offloads: 0 };
}

/**
 * Opens `/dev/net/tun` (non-blocking, close-on-exec) and attaches a new TUN
 * interface without packet information headers. Returns the descriptor and
 * the name the kernel gave (it differs from `name` only for `%d` patterns).
 */
export function openTun(name: string): { fd: number; name: string } {
  return openTunDevice(name, 0, false)!;
}

/**
 * `openTun` with `extraFlags` in TUNSETIFF; when `mayRefuse`, an EINVAL from
 * TUNSETIFF (flags this kernel does not know) returns null instead of throwing.
 */
function openTunDevice(
  name: string,
  extraFlags: number,
  mayRefuse: boolean,
): { fd: number; name: string } | null {
  const path = encoder.encode("/dev/net/tun\0");
  const fd = tunLibc().open(path, TUN.O_RDWR | TUN.O_CLOEXEC | TUN.O_NONBLOCK);
  if (fd < 0) {
    const code = errno();
    if (code === TUN.EPERM || code === TUN.EACCES) {
      throw failure(
        `creating TUN device ${name} needs root or CAP_NET_ADMIN (and access to /dev/net/tun)`,
        "open /dev/net/tun",
        code,
      );
    }
    if (code === TUN.ENOENT) {
      throw failure(
        `creating TUN device ${name}: /dev/net/tun is missing (load the tun module; in a ` +
          `container pass --device /dev/net/tun)`,
        "open /dev/net/tun",
        code,
      );
    }
    throw failure(`creating TUN device ${name}`, "open /dev/net/tun", code);
  }
  const request = ifreq(name);
  const flags = TUN.IFF_TUN | TUN.IFF_NO_PI | extraFlags;
  new DataView(request.buffer).setUint16(IfReq.flags, flags, true);
  if (tunLibc().ioctl(fd, BigInt(TUN.TUNSETIFF), request) < 0) {
    const code = errno();
    libc().close(fd);
    if (mayRefuse && code === TUN_OFFLOAD.EINVAL) return null;
    if (code === TUN.EPERM || code === TUN.EACCES) {
      throw failure(
        `creating TUN device ${name} needs root or CAP_NET_ADMIN`,
        "ioctl TUNSETIFF",
        code,
      );
    }
    const hint = code === TUN.EBUSY ? " (is another process using this device name?)" : "";
    throw failure(`creating TUN device ${name}${hint}`, "ioctl TUNSETIFF", code);
  }
  const end = request.indexOf(0, IfReq.name);
  return { fd, name: new TextDecoder().decode(request.subarray(IfReq.name, end)) };
}

/** Sets MTU, brings the link up, then adds addresses and routes, in that order. */
export function configureTun(name: string, config: TunConfig): void {
  const needs6 = [...config.addresses, ...config.routes].some((p) => p.family === 6);
  const inet = controlSocket(LINUX.AF_INET, name);
  const inet6 = needs6 ? controlSocket(LINUX.AF_INET6, name) : -1;
  try {
    setMtu(inet, name, config.mtu);
    setUp(inet, name);
    const index = interfaceIndex(inet, name);
    for (const address of config.addresses) {
      if (address.family === 4) addIPv4Address(inet, name, address);
      else addIPv6Address(inet6, name, index, address);
    }
    for (const route of config.routes) {
      if (route.family === 4) addIPv4Route(inet, name, route);
      else addIPv6Route(inet6, name, index, route);
    }
  } finally {
    libc().close(inet);
    if (inet6 >= 0) libc().close(inet6);
  }
}

function controlSocket(family: number, name: string): number {
  const fd = libc().socket(family, LINUX.SOCK_DGRAM | LINUX.SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const which = family === LINUX.AF_INET ? "IPv4" : "IPv6 (is IPv6 disabled?)";
    throw failure(`configuring TUN device ${name}: opening an ${which} control socket`, "socket");
  }
  return fd;
}

function ioctl(fd: number, request: number, argument: Uint8Array, context: string, call: string) {
  if (tunLibc().ioctl(fd, BigInt(request), argument) < 0) throw failure(context, `ioctl ${call}`);
}

function setMtu(fd: number, name: string, mtu: number): void {
  const request = ifreq(name);
  new DataView(request.buffer).setInt32(IfReq.mtu, mtu, true);
  ioctl(fd, TUN.SIOCSIFMTU, request, `setting MTU ${mtu} on ${name}`, "SIOCSIFMTU");
}

function setUp(fd: number, name: string): void {
  const request = ifreq(name);
  const view = new DataView(request.buffer);
  ioctl(fd, TUN.SIOCGIFFLAGS, request, `reading flags of ${name}`, "SIOCGIFFLAGS");
  const flags = view.getUint16(IfReq.flags, true) | TUN.IFF_UP | TUN.IFF_RUNNING;
  view.setUint16(IfReq.flags, flags, true);
  ioctl(fd, TUN.SIOCSIFFLAGS, request, `bringing ${name} up`, "SIOCSIFFLAGS");
}

function interfaceIndex(fd: number, name: string): number {
  const request = ifreq(name);
  ioctl(fd, TUN.SIOCGIFINDEX, request, `reading the index of ${name}`, "SIOCGIFINDEX");
  return new DataView(request.buffer).getInt32(IfReq.ifindex, true);
}

/** Writes a `sockaddr_in` for `address` at `offset` of `target`. */
function putSockaddrIn(target: Uint8Array, offset: number, address: Uint8Array): void {
  new DataView(target.buffer).setUint16(offset + SockaddrIn.family, LINUX.AF_INET, true);
  target.set(address, offset + SockaddrIn.addr);
}

function addIPv4Address(fd: number, name: string, address: Prefix): void {
  const context = `adding address ${address.text} to ${name}`;
  const request = ifreq(name);
  putSockaddrIn(request, IfReq.addr, address.bytes);
  ioctl(fd, TUN.SIOCSIFADDR, request, context, "SIOCSIFADDR");
  const mask = ifreq(name);
  putSockaddrIn(mask, IfReq.addr, ipv4Netmask(address.length));
  ioctl(fd, TUN.SIOCSIFNETMASK, mask, context, "SIOCSIFNETMASK");
}

function addIPv6Address(fd: number, name: string, index: number, address: Prefix): void {
  const request = new Uint8Array(In6IfReq.size);
  request.set(address.bytes, In6IfReq.addr);
  const view = new DataView(request.buffer);
  view.setUint32(In6IfReq.prefixLen, address.length, true);
  view.setInt32(In6IfReq.ifindex, index, true);
  ioctl(fd, TUN.SIOCSIFADDR, request, `adding address ${address.text} to ${name}`, "SIOCSIFADDR");
}

function addIPv4Route(fd: number, name: string, route: Prefix): void {
  const entry = new Uint8Array(RtEntry.size);
  putSockaddrIn(entry, RtEntry.dst, route.bytes);
  putSockaddrIn(entry, RtEntry.genmask, ipv4Netmask(route.length));
  const view = new DataView(entry.buffer);
  view.setUint16(RtEntry.flags, TUN.RTF_UP, true);
  const context = `adding route ${route.text} via ${name}`;
  // rt_dev is a `char *`; the kernel copies the string during the ioctl, and
  // `device` stays referenced until after it (see the last line).
  const device = encoder.encode(`${name}\0`);
  const pointer = Deno.UnsafePointer.value(Deno.UnsafePointer.of(device));
  view.setBigUint64(RtEntry.dev, BigInt(pointer), true);
  ioctl(fd, TUN.SIOCADDRT, entry, context, "SIOCADDRT");
  device.fill(0);
}

function addIPv6Route(fd: number, name: string, index: number, route: Prefix): void {
  const message = new Uint8Array(In6RtMsg.size);
  message.set(route.bytes, In6RtMsg.dst);
  const view = new DataView(message.buffer);
  view.setUint16(In6RtMsg.dstLen, route.length, true);
  view.setUint32(In6RtMsg.flags, TUN.RTF_UP, true);
  view.setInt32(In6RtMsg.ifindex, index, true);
  ioctl(fd, TUN.SIOCADDRT, message, `adding route ${route.text} via ${name}`, "SIOCADDRT");
}
