/**
 * lib/net/address.ts: HOST:PORT parsing and formatting, and the exact byte layout of the
 * `sockaddr_in` / `sockaddr_in6` structures handed to the kernel and to quiche.
 */
import assert from "node:assert/strict";
import {
  decodeSockaddr,
  encodeSockaddr,
  familyOf,
  formatAddress,
  parseHostPort,
  sameSockaddr,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
} from "../lib/net/address.ts";

const AF_INET = 2;
const AF_INET6 = 10;

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("parseHostPort: IPv4 HOST:PORT", () => {
  assert.deepEqual(parseHostPort("1.2.3.4:443"), { hostname: "1.2.3.4", port: 443 });
  assert.deepEqual(parseHostPort("0.0.0.0:0"), { hostname: "0.0.0.0", port: 0 });
  assert.deepEqual(parseHostPort("255.255.255.255:65535"), {
    hostname: "255.255.255.255",
    port: 65535,
  });
  // Leading zeros in the port are still decimal.
  assert.deepEqual(parseHostPort("10.0.0.1:0443"), { hostname: "10.0.0.1", port: 443 });
});

Deno.test("parseHostPort: bracketed IPv6, normalised to the compressed lower-case form", () => {
  assert.deepEqual(parseHostPort("[::1]:443"), { hostname: "::1", port: 443 });
  assert.deepEqual(parseHostPort("[::]:0"), { hostname: "::", port: 0 });
  assert.deepEqual(parseHostPort("[2001:DB8:0:0:0:0:0:1]:8443"), {
    hostname: "2001:db8::1",
    port: 8443,
  });
  assert.deepEqual(parseHostPort("[fe80::abcd:1]:65535"), {
    hostname: "fe80::abcd:1",
    port: 65535,
  });
});

Deno.test("parseHostPort: localhost means 127.0.0.1", () => {
  assert.deepEqual(parseHostPort("localhost:8080"), { hostname: "127.0.0.1", port: 8080 });
  assert.deepEqual(parseHostPort("localhost:0"), { hostname: "127.0.0.1", port: 0 });
});

Deno.test("parseHostPort: malformed text names the expected format", () => {
  for (
    const text of [
      "",
      "1.2.3.4",
      "1.2.3.4:",
      ":443",
      "1.2.3.4:-1",
      "1.2.3.4:44a",
      "1.2.3.4:443 ",
      "::1:443", // IPv6 without brackets is ambiguous
      "[::1]443",
      "[::1]:",
      "localhost",
    ]
  ) {
    assert.throws(
      () => parseHostPort(text),
      new Error(`invalid address "${text}": expected HOST:PORT or [IPv6]:PORT`),
      text,
    );
  }
});

Deno.test("parseHostPort: out-of-range ports", () => {
  for (const text of ["1.2.3.4:65536", "1.2.3.4:99999999999999999999999", "[::1]:70000"]) {
    assert.throws(
      () => parseHostPort(text),
      new Error(`invalid port in "${text}": must be 0-65535`),
      text,
    );
  }
});

Deno.test("parseHostPort: host names and invalid IPs are refused with the host named", () => {
  const cases: [string, string][] = [
    ["example.com:443", "example.com"],
    ["256.1.1.1:80", "256.1.1.1"],
    ["1.2.3.4.5:80", "1.2.3.4.5"],
    ["[zz::1]:80", "zz::1"],
    ["[1:2:3:4:5:6:7:8:9]:80", "1:2:3:4:5:6:7:8:9"],
    ["LOCALHOST:80", "LOCALHOST"],
    [" 1.2.3.4:443", " 1.2.3.4"],
    ["[ ::1]:443", " ::1"],
    ["[]:443", "[]"],
  ];
  for (const [text, host] of cases) {
    assert.throws(
      () => parseHostPort(text),
      new Error(`invalid IP address "${host}" in "${text}"`),
      text,
    );
  }
});

Deno.test("parseHostPort: non-dotted-quad IPv4 spellings are refused, not reinterpreted", () => {
  // ipaddr.isValid accepts inet_aton-style forms; "010.0.0.1" would silently become 8.0.0.1
  // (octal), "1.2.3" 1.2.0.3, "2130706433" 127.0.0.1. A typo must not change the address.
  for (const host of ["010.0.0.1", "1.2.3", "127.1", "0x7f.0.0.1", "2130706433"]) {
    const text = `${host}:80`;
    assert.throws(
      () => parseHostPort(text),
      new Error(`invalid IP address "${host}" in "${text}"`),
      text,
    );
  }
});

Deno.test("parseHostPort: a v4-mapped IPv6 address comes back as plain IPv4", () => {
  // SocketAddress promises "IPv4 is always in dotted form, never v4-mapped".
  const address = parseHostPort("[::ffff:127.0.0.1]:443");
  assert.deepEqual(address, { hostname: "127.0.0.1", port: 443 });
  assert.equal(familyOf(address), 4);
});

Deno.test("formatAddress: brackets IPv6 only, and round-trips through parseHostPort", () => {
  assert.equal(formatAddress({ hostname: "1.2.3.4", port: 443 }), "1.2.3.4:443");
  assert.equal(formatAddress({ hostname: "::1", port: 443 }), "[::1]:443");
  assert.equal(formatAddress({ hostname: "2001:db8::1", port: 0 }), "[2001:db8::1]:0");
  for (
    const text of ["1.2.3.4:443", "0.0.0.0:0", "[::1]:443", "[::]:65535", "[2001:db8::5:6]:853"]
  ) {
    assert.equal(formatAddress(parseHostPort(text)), text);
  }
  assert.equal(formatAddress(parseHostPort("localhost:53")), "127.0.0.1:53");
});

Deno.test("familyOf", () => {
  assert.equal(familyOf({ hostname: "10.1.2.3", port: 1 }), 4);
  assert.equal(familyOf({ hostname: "0.0.0.0", port: 1 }), 4);
  assert.equal(familyOf({ hostname: "::", port: 1 }), 6);
  assert.equal(familyOf({ hostname: "::1", port: 1 }), 6);
});

Deno.test("encodeSockaddr: sockaddr_in layout", () => {
  assert.equal(SOCKADDR_IN_SIZE, 16);
  const bytes = encodeSockaddr({ hostname: "192.168.1.2", port: 0x1234 }, 4);
  assert.equal(bytes.length, 16);
  // family (LE u16) | port (BE u16) | 4 address bytes | 8 zero bytes
  assert.equal(hex(bytes), "0200" + "1234" + "c0a80102" + "0000000000000000");
  assert.equal(bytes[0], AF_INET);
  const edge = encodeSockaddr({ hostname: "255.0.0.1", port: 65535 }, 4);
  assert.equal(hex(edge), "0200ffffff0000010000000000000000");
});

Deno.test("encodeSockaddr: sockaddr_in6 layout", () => {
  assert.equal(SOCKADDR_IN6_SIZE, 28);
  const bytes = encodeSockaddr({ hostname: "2001:db8::a:b", port: 443 }, 6);
  assert.equal(bytes.length, 28);
  // family (LE u16) | port (BE u16) | flowinfo u32 | 16 address bytes | scope_id u32
  assert.equal(
    hex(bytes),
    "0a00" + "01bb" + "00000000" + "20010db80000000000000000000a000b" + "00000000",
  );
  assert.equal(bytes[0], AF_INET6);
  assert.equal(
    hex(encodeSockaddr({ hostname: "::1", port: 1 }, 6)).slice(16, 48),
    "0".repeat(31) + "1",
  );
});

Deno.test("encodeSockaddr: IPv4 on an IPv6 socket becomes v4-mapped", () => {
  const bytes = encodeSockaddr({ hostname: "127.0.0.1", port: 4433 }, 6);
  assert.equal(bytes.length, 28);
  assert.equal(
    hex(bytes),
    "0a00" + "1151" + "00000000" + "00000000000000000000ffff7f000001" + "00000000",
  );
});

Deno.test("encodeSockaddr: IPv6 to an IPv4 socket throws", () => {
  assert.throws(
    () => encodeSockaddr({ hostname: "::1", port: 443 }, 4),
    new Error("cannot reach IPv6 address ::1 from an IPv4 socket"),
  );
  assert.throws(
    () => encodeSockaddr({ hostname: "2001:db8::1", port: 443 }, 4),
    /cannot reach IPv6 address 2001:db8::1 from an IPv4 socket/,
  );
});

Deno.test("decodeSockaddr: inverts encodeSockaddr, unmapping v4-mapped addresses", () => {
  const addresses = [
    { hostname: "1.2.3.4", port: 443 },
    { hostname: "0.0.0.0", port: 0 },
    { hostname: "255.255.255.255", port: 65535 },
    { hostname: "::1", port: 8443 },
    { hostname: "::", port: 1 },
    { hostname: "2001:db8::a:b", port: 0x8001 },
  ];
  for (const address of addresses) {
    const family = familyOf(address);
    assert.deepEqual(decodeSockaddr(encodeSockaddr(address, family)), address);
    if (family === 4) {
      // Through an IPv6 socket: v4-mapped on the wire, plain IPv4 after decoding.
      const mapped = encodeSockaddr(address, 6);
      assert.equal(mapped.length, 28);
      assert.deepEqual(decodeSockaddr(mapped), address);
    }
  }
});

Deno.test("decodeSockaddr: reads a sockaddr inside a larger buffer at an offset", () => {
  const big = new Uint8Array(200).fill(0xee);
  big.set(encodeSockaddr({ hostname: "10.9.8.7", port: 5353 }, 4), 37);
  assert.deepEqual(decodeSockaddr(big.subarray(37)), { hostname: "10.9.8.7", port: 5353 });
  big.set(encodeSockaddr({ hostname: "fd00::7", port: 5354 }, 6), 101);
  assert.deepEqual(decodeSockaddr(big.subarray(101, 101 + 28)), {
    hostname: "fd00::7",
    port: 5354,
  });
});

Deno.test("decodeSockaddr: unknown families throw", () => {
  const bytes = new Uint8Array(28);
  bytes[0] = 1; // AF_UNIX
  assert.throws(() => decodeSockaddr(bytes), new Error("unsupported socket address family 1"));
  assert.throws(() => decodeSockaddr(new Uint8Array(28)), /unsupported socket address family 0/);
});

Deno.test("sameSockaddr compares the used bytes of either family", () => {
  const a4 = encodeSockaddr({ hostname: "10.0.0.1", port: 1000 }, 4);
  assert.equal(sameSockaddr(a4, encodeSockaddr({ hostname: "10.0.0.1", port: 1000 }, 4)), true);
  assert.equal(sameSockaddr(a4, encodeSockaddr({ hostname: "10.0.0.1", port: 1001 }, 4)), false);
  assert.equal(sameSockaddr(a4, encodeSockaddr({ hostname: "10.0.0.2", port: 1000 }, 4)), false);
  // Bytes past sizeof(sockaddr_in) are ignored: a kernel-filled 128-byte slot matches.
  const slot = new Uint8Array(128).fill(0x5a);
  slot.set(a4);
  assert.equal(sameSockaddr(slot, a4), true);
  assert.equal(sameSockaddr(a4, slot), true);

  const a6 = encodeSockaddr({ hostname: "2001:db8::1", port: 1000 }, 6);
  assert.equal(sameSockaddr(a6, encodeSockaddr({ hostname: "2001:db8::1", port: 1000 }, 6)), true);
  assert.equal(sameSockaddr(a6, encodeSockaddr({ hostname: "2001:db8::2", port: 1000 }, 6)), false);
  assert.equal(sameSockaddr(a6, encodeSockaddr({ hostname: "2001:db8::1", port: 999 }, 6)), false);
  const slot6 = new Uint8Array(128).fill(0xa5);
  slot6.set(a6);
  assert.equal(sameSockaddr(slot6, a6), true);
  // A change in the last used byte (scope_id) is seen.
  const scoped = a6.slice();
  scoped[27] = 1;
  assert.equal(sameSockaddr(a6, scoped), false);

  // The same IPv4 peer seen plainly and v4-mapped are different sockaddrs.
  const mapped = encodeSockaddr({ hostname: "10.0.0.1", port: 1000 }, 6);
  assert.equal(sameSockaddr(a4, mapped), false);
  assert.equal(sameSockaddr(mapped, a4), false);
});
