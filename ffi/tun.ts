/**
 * Raw libc calls, constants and kernel struct layouts for Linux TUN devices:
 * `open`/`ioctl`/`read` and a synchronous `poll` that only the TUN reader
 * worker calls (it blocks that worker's thread, never the event loop). The
 * rest (`socket`, `write`, `close`, `eventfd`, errno) comes from `libc.ts`.
 * Layouts are LP64 Linux (x86-64 and AArch64); `tests/tun_test.ts` checks
 * every offset and constant against the C compiler's view of the headers.
 */

const tunSymbols = {
  /** `open(path, flags)`: the variadic `mode` is unused without O_CREAT. */
  open: { parameters: ["buffer", "i32"], result: "i32" },
  /**
   * `ioctl(fd, request, argp)`: variadic in C, but on x86-64 and AArch64 Linux
   * a pointer third argument is passed exactly like a fixed one.
   */
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** `ioctl(fd, request, value)` for requests whose argument is an integer (`TUNSETOFFLOAD`). */
  ioctlValue: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i64" },
  /** Synchronous: blocks the calling thread, so only the reader worker uses it. */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The bound TUN symbols. */
export type TunLibc = Deno.DynamicLibrary<typeof tunSymbols>["symbols"];

let symbols: TunLibc | undefined;

/** Returns the TUN symbols, loading libc on first use (once per thread); Linux only. */
export function tunLibc(): TunLibc {
  if (symbols) return symbols;
  if (Deno.build.os !== "linux") {
    throw new Error(`TUN devices need Linux; ${Deno.build.os} is not supported yet`);
  }
  symbols = Deno.dlopen("libc.so.6", tunSymbols).symbols;
  return symbols;
}

/** Linux constants for TUN set-up (identical on x86-64 and AArch64). */
export const TUN = {
  O_RDWR: 2,
  O_NONBLOCK: 0o4000,
  O_CLOEXEC: 0o2000000,
  /** `_IOW('T', 202, int)` */
  TUNSETIFF: 0x400454ca,
  IFF_TUN: 0x0001,
  IFF_NO_PI: 0x1000,
  IFNAMSIZ: 16,
  SIOCADDRT: 0x890b,
  SIOCGIFFLAGS: 0x8913,
  SIOCSIFFLAGS: 0x8914,
  SIOCSIFADDR: 0x8916,
  SIOCSIFNETMASK: 0x891c,
  SIOCSIFMTU: 0x8922,
  SIOCGIFINDEX: 0x8933,
  IFF_UP: 0x1,
  IFF_RUNNING: 0x40,
  RTF_UP: 0x1,
  POLLIN: 0x1,
  POLLERR: 0x8,
  POLLHUP: 0x10,
  POLLNVAL: 0x20,
  EPERM: 1,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENOENT: 2,
} as const;

/**
 * Linux constants for TUN offloads (linux/if_tun.h, linux/virtio_net.h), kept
 * apart from `TUN` because older system headers lack the USO and UDP_L4 ones;
 * `tests/tun_offload_test.ts` checks them against the headers that have them.
 */
export const TUN_OFFLOAD = {
  /** Every read and write starts with a `struct virtio_net_hdr`. */
  IFF_VNET_HDR: 0x4000,
  /** `_IOW('T', 208, unsigned int)` */
  TUNSETOFFLOAD: 0x400454d0,
  TUN_F_CSUM: 0x01,
  TUN_F_TSO4: 0x02,
  TUN_F_TSO6: 0x04,
  /** Linux 6.2+. */
  TUN_F_USO4: 0x20,
  /** Linux 6.2+. */
  TUN_F_USO6: 0x40,
  VIRTIO_NET_HDR_F_NEEDS_CSUM: 1,
  VIRTIO_NET_HDR_F_DATA_VALID: 2,
  VIRTIO_NET_HDR_GSO_NONE: 0,
  VIRTIO_NET_HDR_GSO_TCPV4: 1,
  VIRTIO_NET_HDR_GSO_TCPV6: 4,
  /** Linux 5.18+ headers. */
  VIRTIO_NET_HDR_GSO_UDP_L4: 5,
  VIRTIO_NET_HDR_GSO_ECN: 0x80,
  EINVAL: 22,
} as const;

/** `struct virtio_net_hdr` (legacy, native byte order: little-endian on x86-64 and AArch64). */
export const VirtioNetHdr = {
  size: 10,
  flags: 0,
  gsoType: 1,
  hdrLen: 2,
  gsoSize: 4,
  csumStart: 6,
  csumOffset: 8,
} as const;

/** `struct ifreq`: a 16-byte name, then a union (flags, mtu, ifindex or a sockaddr). */
export const IfReq = { size: 40, name: 0, flags: 16, mtu: 16, ifindex: 16, addr: 16 } as const;

/** `struct in6_ifreq` (linux/ipv6.h) for `SIOCSIFADDR` on an AF_INET6 socket. */
export const In6IfReq = { size: 24, addr: 0, prefixLen: 16, ifindex: 20 } as const;

/** `struct rtentry` (net/route.h) for IPv4 `SIOCADDRT`; `dev` is a `char *`. */
export const RtEntry = {
  size: 120,
  dst: 8,
  gateway: 24,
  genmask: 40,
  flags: 56,
  metric: 80,
  dev: 88,
} as const;

/** `struct in6_rtmsg` (net/route.h) for IPv6 `SIOCADDRT`. */
export const In6RtMsg = {
  size: 80,
  dst: 0,
  gateway: 32,
  dstLen: 52,
  metric: 56,
  flags: 72,
  ifindex: 76,
} as const;

/** `struct sockaddr_in`: family (host order), port, then the address at 4. */
export const SockaddrIn = { size: 16, family: 0, addr: 4 } as const;

/** `struct pollfd`. */
export const PollFd = { size: 8, fd: 0, events: 4, revents: 6 } as const;
