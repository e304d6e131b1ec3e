/**
 * TUN device tests: struct layouts against the C headers, option validation,
 * the platform decision, and (as root, in a fresh network namespace) a real
 * device answering ping over IPv4 and IPv6, the non-root error, a read error
 * when the interface is deleted underneath, and removal on close.
 */
import assert from "node:assert/strict";
import { runCProbe } from "./support/c_probe.ts";
import { IfReq, In6IfReq, In6RtMsg, PollFd, RtEntry, SockaddrIn, TUN } from "../ffi/tun.ts";
import { ipv4Netmask, parseTunConfig } from "../lib/tun/config.ts";
import { tunUnsupportedReason } from "../lib/tun/support.ts";
import type { SeenRequest } from "./support/tun_echo_main.ts";
import { type Host, Topology } from "../lib/netns/mod.ts";

const ECHO_SCRIPT = new URL("./support/tun_echo_main.ts", import.meta.url);

const PROBE = `
#include <stdio.h>
#include <stddef.h>
#include <fcntl.h>
#include <poll.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <net/route.h>
#include <linux/if_tun.h>
#include <linux/ipv6.h>
#define S(t) printf("%s=%zu\\n", #t, sizeof(t))
#define O(t, f) printf("%s.%s=%zu\\n", #t, #f, offsetof(t, f))
#define C(n) printf("%s=%lu\\n", #n, (unsigned long)(n))
int main(void) {
  S(struct ifreq); O(struct ifreq, ifr_name); O(struct ifreq, ifr_flags); O(struct ifreq, ifr_mtu);
  O(struct ifreq, ifr_ifindex); O(struct ifreq, ifr_addr);
  S(struct in6_ifreq); O(struct in6_ifreq, ifr6_addr); O(struct in6_ifreq, ifr6_prefixlen);
  O(struct in6_ifreq, ifr6_ifindex);
  S(struct rtentry); O(struct rtentry, rt_dst); O(struct rtentry, rt_gateway);
  O(struct rtentry, rt_genmask); O(struct rtentry, rt_flags); O(struct rtentry, rt_metric);
  O(struct rtentry, rt_dev);
  S(struct in6_rtmsg); O(struct in6_rtmsg, rtmsg_dst); O(struct in6_rtmsg, rtmsg_gateway);
  O(struct in6_rtmsg, rtmsg_dst_len); O(struct in6_rtmsg, rtmsg_metric);
  O(struct in6_rtmsg, rtmsg_flags); O(struct in6_rtmsg, rtmsg_ifindex);
  S(struct sockaddr_in); O(struct sockaddr_in, sin_family); O(struct sockaddr_in, sin_addr);
  S(struct pollfd); O(struct pollfd, fd); O(struct pollfd, events); O(struct pollfd, revents);
  C(O_RDWR); C(O_NONBLOCK); C(O_CLOEXEC); C(TUNSETIFF); C(IFF_TUN); C(IFF_NO_PI); C(IFNAMSIZ);
  C(SIOCADDRT); C(SIOCGIFFLAGS); C(SIOCSIFFLAGS); C(SIOCSIFADDR); C(SIOCSIFNETMASK);
  C(SIOCSIFMTU); C(SIOCGIFINDEX); C(IFF_UP); C(IFF_RUNNING); C(RTF_UP);
  C(POLLIN); C(POLLERR); C(POLLHUP); C(POLLNVAL); C(EPERM); C(EACCES); C(EBUSY); C(EEXIST);
  C(ENOENT);
  return 0;
}
`;

Deno.test("TUN struct layouts and constants match the C headers", async () => {
  const c = await runCProbe(PROBE);
  const expected: Record<string, number> = {
    "struct ifreq": IfReq.size,
    "struct ifreq.ifr_name": IfReq.name,
    "struct ifreq.ifr_flags": IfReq.flags,
    "struct ifreq.ifr_mtu": IfReq.mtu,
    "struct ifreq.ifr_ifindex": IfReq.ifindex,
    "struct ifreq.ifr_addr": IfReq.addr,
    "struct in6_ifreq": In6IfReq.size,
    "struct in6_ifreq.ifr6_addr": In6IfReq.addr,
    "struct in6_ifreq.ifr6_prefixlen": In6IfReq.prefixLen,
    "struct in6_ifreq.ifr6_ifindex": In6IfReq.ifindex,
    "struct rtentry": RtEntry.size,
    "struct rtentry.rt_dst": RtEntry.dst,
    "struct rtentry.rt_gateway": RtEntry.gateway,
    "struct rtentry.rt_genmask": RtEntry.genmask,
    "struct rtentry.rt_flags": RtEntry.flags,
    "struct rtentry.rt_metric": RtEntry.metric,
    "struct rtentry.rt_dev": RtEntry.dev,
    "struct in6_rtmsg": In6RtMsg.size,
    "struct in6_rtmsg.rtmsg_dst": In6RtMsg.dst,
    "struct in6_rtmsg.rtmsg_gateway": In6RtMsg.gateway,
    "struct in6_rtmsg.rtmsg_dst_len": In6RtMsg.dstLen,
    "struct in6_rtmsg.rtmsg_metric": In6RtMsg.metric,
    "struct in6_rtmsg.rtmsg_flags": In6RtMsg.flags,
    "struct in6_rtmsg.rtmsg_ifindex": In6RtMsg.ifindex,
    "struct sockaddr_in": SockaddrIn.size,
    "struct sockaddr_in.sin_family": SockaddrIn.family,
    "struct sockaddr_in.sin_addr": SockaddrIn.addr,
    "struct pollfd": PollFd.size,
    "struct pollfd.fd": PollFd.fd,
    "struct pollfd.events": PollFd.events,
    "struct pollfd.revents": PollFd.revents,
  };
  for (const [name, value] of Object.entries(TUN)) expected[name] = value;
  for (const [name, value] of Object.entries(expected)) {
    assert.equal(value, c[name], `${name}: binding says ${value}, C says ${c[name]}`);
  }
});

Deno.test("TUN support: Linux only, macOS utun refused with a clear message", () => {
  assert.equal(tunUnsupportedReason("linux", "ztna0"), null);
  assert.equal(tunUnsupportedReason("linux", "utun7"), null);
  assert.match(tunUnsupportedReason("darwin", "utun7")!, /utun7: macOS utun is not supported yet/);
  assert.match(tunUnsupportedReason("darwin", "ztna0")!, /macOS utun is not supported yet/);
  assert.match(tunUnsupportedReason("windows", "ztna0")!, /Linux only; windows is not supported/);
});

Deno.test("TUN options: typed prefixes, defaults, and errors that name the bad value", () => {
  const config = parseTunConfig({
    addresses: ["100.64.0.1/32", "fd7a:7a7a::1/128"],
    routes: ["100.80.0.0/16", "fd7a:7a7a:80::/48"],
  });
  assert.equal(config.name, "ztna0");
  assert.equal(config.mtu, 1280);
  assert.deepEqual(
    config.addresses.map((p) => [p.family, Array.from(p.bytes), p.length]),
    [[4, [100, 64, 0, 1], 32], [6, [0xfd, 0x7a, 0x7a, 0x7a, ...Array(11).fill(0), 1], 128]],
  );
  assert.deepEqual(Array.from(ipv4Netmask(16)), [255, 255, 0, 0]);
  assert.deepEqual(Array.from(ipv4Netmask(32)), [255, 255, 255, 255]);
  assert.deepEqual(Array.from(ipv4Netmask(0)), [0, 0, 0, 0]);
  const rejects: [Parameters<typeof parseTunConfig>[0], RegExp][] = [
    [{ addresses: ["fd7a:ztna::1/128"] }, /invalid TUN address "fd7a:ztna::1\/128"/],
    [{ addresses: ["100.64.0.1"] }, /invalid TUN address "100.64.0.1"/],
    [{ addresses: ["100.64.0.1/33"] }, /invalid TUN address/],
    [{ addresses: ["010.0.0.1/8"] }, /invalid TUN address/],
    [{ routes: ["100.80.0.1/16"] }, /host bits are set \(did you mean 100.80.0.0\/16\?\)/],
    [{ routes: ["fd7a:7a7a:80::1/48"] }, /did you mean fd7a:7a7a:80::\/48\?/],
    [{ addresses: ["100.64.0.1/32", "100.64.0.2/32"] }, /at most one IPv4 address/],
    [{ name: "a-name-that-is-too-long" }, /invalid TUN device name/],
    [{ name: "bad/name" }, /invalid TUN device name/],
    [{ mtu: 1279, addresses: ["fd7a:7a7a::1/128"] }, /MTU 1279 .*IPv6 needs at least 1280/],
    [{ mtu: 70000 }, /MTU 70000 is out of range/],
  ];
  for (const [options, message] of rejects) {
    assert.throws(() => parseTunConfig(options), message, JSON.stringify(options));
  }
});

/** Runs `body` with a one-host topology, always destroyed. */
async function withHost(body: (net: Topology, host: Host) => Promise<void>): Promise<void> {
  const net = await Topology.create("ztun");
  try {
    await body(net, await net.addHost("h"));
  } finally {
    await net.destroy();
  }
}

Deno.test("TUN device answers ping over IPv4 and IPv6; close is fast and removes it", async () => {
  await withHost(async (net, host) => {
    const echo = net.spawnDeno(host, ECHO_SCRIPT);
    assert.equal(await echo.nextLine(), "READY ztna0");
    const show = await net.exec(host, ["ip", "-o", "addr", "show", "dev", "ztna0"]);
    assert.match(show.stdout, /inet 100\.64\.0\.1\/32/);
    assert.match(show.stdout, /inet6 fd7a:7a7a::1\/128/);
    const routes = await net.exec(host, ["ip", "route", "show", "dev", "ztna0"]);
    assert.match(routes.stdout, /100\.80\.0\.0\/16/);
    const mtu = await net.exec(host, ["cat", "/sys/class/net/ztna0/mtu"]);
    assert.equal(mtu.stdout.trim(), "1400");

    const ping = (family: string, target: string) =>
      net.exec(host, [
        ...["ping", family, "-c", "3", "-W", "1", "-i", "0.2"],
        ...["-e", "4242", "-p", "ab12", target],
      ]);
    const ping4 = await ping("-4", "100.80.0.7");
    assert.equal(ping4.code, 0, ping4.stdout + ping4.stderr);
    assert.match(ping4.stdout, /3 packets transmitted, 3 received/);
    const ping6 = await ping("-6", "fd7a:7a7a:80::7");
    assert.equal(ping6.code, 0, ping6.stdout + ping6.stderr);
    assert.match(ping6.stdout, /3 packets transmitted, 3 received/);

    echo.process.kill("SIGTERM");
    const report = JSON.parse(await echo.nextLine()) as {
      seen: SeenRequest[];
      other: number;
      closeMs: number;
    };
    assert.equal((await echo.stop()).code, 0);
    const expected = (family: 4 | 6, source: string, destination: string) =>
      [1, 2, 3].map((sequence) => ({
        family,
        protocol: family === 4 ? 1 : 58,
        source,
        destination,
        identifier: 4242,
        sequence,
        pattern: "ab12ab12ab12ab12",
      }));
    assert.deepEqual(report.seen, [
      ...expected(4, "100.64.0.1", "100.80.0.7"),
      ...expected(6, "fd7a:7a7a::1", "fd7a:7a7a:80::7"),
    ]);
    assert.ok(report.closeMs < 1000, `close() took ${report.closeMs} ms`);
    const gone = await net.exec(host, ["ip", "link", "show", "ztna0"]);
    assert.notEqual(gone.code, 0, "ztna0 should be deleted when its descriptor closes");
  });
});

Deno.test("TUN device: reading fails with a clear error when the interface is deleted", async () => {
  await withHost(async (net, host) => {
    const echo = net.spawnDeno(host, ECHO_SCRIPT);
    assert.equal(await echo.nextLine(), "READY ztna0");
    const deleted = await net.exec(host, ["ip", "link", "del", "ztna0"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(
      await echo.nextLine(),
      /^READ-ERROR reading from TUN device ztna0: read failed: File descriptor in bad state/,
    );
    echo.process.kill("SIGTERM");
    assert.ok(JSON.parse(await echo.nextLine()).closeMs < 1000);
    assert.equal((await echo.stop()).code, 0);
  });
});

Deno.test("TUN device: without root or CAP_NET_ADMIN creation says what is needed", async () => {
  await withHost(async (net, host) => {
    const denoDir = await Deno.makeTempDir({ prefix: "ztna-nobody-" });
    try {
      await Deno.chown(denoDir, 65534, 65534);
      // As nobody, opening /dev/net/tun fails (EACCES where it is mode 0600, else TUNSETIFF
      // fails with EPERM); as root without CAP_NET_ADMIN, TUNSETIFF fails with EPERM.
      const nobody = await net.execDeno(host, ECHO_SCRIPT, [], {
        user: 65534,
        env: { DENO_DIR: denoDir, HOME: denoDir },
      });
      const noCapability = await net.execDeno(host, ECHO_SCRIPT, [], {
        withoutCapabilities: ["net_admin"],
      });
      for (const result of [nobody, noCapability]) {
        assert.equal(result.code, 1, result.stderr);
        assert.match(
          result.stderr,
          /^creating TUN device ztna0 needs root or CAP_NET_ADMIN.*: (open \/dev\/net\/tun|ioctl TUNSETIFF) failed: (Operation not permitted|Permission denied)/m,
        );
      }
      assert.match(
        noCapability.stderr,
        /ioctl TUNSETIFF failed: Operation not permitted \(errno 1\)/,
      );
      const links = await net.exec(host, ["ip", "-o", "link", "show"]);
      assert.doesNotMatch(links.stdout, /ztna0/);
    } finally {
      await Deno.remove(denoDir, { recursive: true });
    }
  });
});

Deno.test("TUN device: destroying the topology while the device is open stops it first", async () => {
  const net = await Topology.create("ztun");
  try {
    const host = await net.addHost("h");
    const echo = net.spawnDeno(host, ECHO_SCRIPT);
    assert.equal(await echo.nextLine(), "READY ztna0");
  } finally {
    await net.destroy(); // SIGTERM closes the device before links and the namespace go
  }
  const namespaces = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" })
    .output();
  assert.doesNotMatch(new TextDecoder().decode(namespaces.stdout), new RegExp(net.id));
});
