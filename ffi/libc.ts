/**
 * The few libc calls the UDP layer needs, bound with `Deno.dlopen`. Linux only:
 * batched datagram I/O (`recvmmsg`/`sendmmsg`) has no portable equivalent.
 */

const libcSymbols = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i64" },
  /** Blocking wait for readiness, run on a worker thread so the event loop stays free. */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i64" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The bound libc symbols. */
export type Libc = Deno.DynamicLibrary<typeof libcSymbols>["symbols"];

let symbols: Libc | undefined;

/** Returns libc's symbols, loading them on first use; refuses non-Linux systems. */
export function libc(): Libc {
  if (symbols) return symbols;
  if (Deno.build.os !== "linux") {
    throw new Error(
      `ztna's UDP layer needs Linux (recvmmsg/sendmmsg); ${Deno.build.os} is not supported yet`,
    );
  }
  symbols = Deno.dlopen("libc.so.6", libcSymbols).symbols;
  return symbols;
}

/** The calling thread's errno, read right after a failed synchronous call. */
export function errno(): number {
  const pointer = libc().__errno_location();
  return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
}

/** An Error naming the failed call and libc's description of the errno. */
export function syscallError(call: string, code = errno()): Error & { errno: number } {
  const text = new Deno.UnsafePointerView(libc().strerror(code)!).getCString();
  return Object.assign(new Error(`${call} failed: ${text} (errno ${code})`), { errno: code });
}

/** Linux constants (identical on x86-64 and AArch64). */
export const LINUX = {
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_DGRAM: 2,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_SNDBUFFORCE: 32,
  SO_RCVBUFFORCE: 33,
  IPPROTO_IPV6: 41,
  SOL_UDP: 17,
  UDP_SEGMENT: 103,
  UDP_GRO: 104,
  IPV6_V6ONLY: 26,
  MSG_DONTWAIT: 0x40,
  MSG_TRUNC: 0x20,
  POLLIN: 0x1,
  POLLOUT: 0x4,
  EFD_NONBLOCK: 0o4000,
  EFD_CLOEXEC: 0o2000000,
  RTLD_NOW: 0x2,
  RTLD_NODELETE: 0x1000,
  EAGAIN: 11,
  EIO: 5,
  EINVAL: 22,
  EINTR: 4,
} as const;

/** `struct mmsghdr` (LP64): msghdr fields then msg_len. */
export const MMsgHdr = {
  size: 64,
  name: 0,
  nameLen: 8,
  iov: 16,
  iovLen: 24,
  control: 32,
  controlLen: 40,
  flags: 48,
  len: 56,
} as const;

/** `struct cmsghdr` (LP64) carrying one 2- or 4-byte value: CMSG_SPACE is 24 bytes. */
export const CMsg = { space: 24, len: 0, level: 8, type: 12, data: 16 } as const;

/** `struct iovec` (LP64). */
export const IoVec = { size: 16, base: 0, len: 8 } as const;
