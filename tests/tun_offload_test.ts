/**
 * TUN offload logic on crafted packets: the virtio header codec and constants
 * against the system headers, splitting TCP/IPv4, TCP/IPv6 and UDP
 * super-packets (lengths, IDs, sequence numbers, flags, checksums verified by
 * the packet parsers), completing partial checksums, and TCP coalescing for
 * writes (what joins, what does not, and that a coalesced super-packet splits
 * back into exactly the segments it was made of).
 */
import assert from "node:assert/strict";
import { runCProbe } from "./support/c_probe.ts";
import { TUN_OFFLOAD, VirtioNetHdr } from "../ffi/tun.ts";
import { foldSum, parseIp, pseudoHeaderSum } from "../lib/packet/mod.ts";
import { parseTcp, TCP_ACK, TCP_CWR, TCP_FIN, TCP_PSH, writeTcpPacket } from "../lib/packet/tcp.ts";
import { parseUdp, writeUdpPacket } from "../lib/packet/udp.ts";
import { completeChecksum } from "../lib/tun/offload/checksum_completion.ts";
import { type SegmentSink, splitGso } from "../lib/tun/offload/gso_split.ts";
import { encodedLength, encodeWrite, planWrites } from "../lib/tun/offload/tcp_coalesce.ts";
import {
  decodeVirtioHeader,
  encodeVirtioHeader,
  VIRTIO_HEADER_BYTES,
  type VirtioHeader,
} from "../lib/tun/offload/virtio_header.ts";

const PROBE = `
#include <stdio.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <errno.h>
#define S(t) printf("%s=%zu\\n", #t, sizeof(t))
#define O(t, f) printf("%s.%s=%zu\\n", #t, #f, offsetof(t, f))
#define C(n) printf("%s=%lu\\n", #n, (unsigned long)(n))
int main(void) {
  S(struct virtio_net_hdr); O(struct virtio_net_hdr, flags); O(struct virtio_net_hdr, gso_type);
  O(struct virtio_net_hdr, hdr_len); O(struct virtio_net_hdr, gso_size);
  O(struct virtio_net_hdr, csum_start); O(struct virtio_net_hdr, csum_offset);
  C(IFF_VNET_HDR); C(TUNSETOFFLOAD); C(TUN_F_CSUM); C(TUN_F_TSO4); C(TUN_F_TSO6);
  C(VIRTIO_NET_HDR_F_NEEDS_CSUM); C(VIRTIO_NET_HDR_F_DATA_VALID); C(VIRTIO_NET_HDR_GSO_NONE);
  C(VIRTIO_NET_HDR_GSO_TCPV4); C(VIRTIO_NET_HDR_GSO_TCPV6); C(VIRTIO_NET_HDR_GSO_ECN); C(EINVAL);
#ifdef TUN_F_USO4
  C(TUN_F_USO4); C(TUN_F_USO6);
#endif
#ifdef VIRTIO_NET_HDR_GSO_UDP_L4
  C(VIRTIO_NET_HDR_GSO_UDP_L4);
#endif
  return 0;
}
`;

/** Constants newer than some system headers: checked only where the headers have them. */
const NEWER = ["TUN_F_USO4", "TUN_F_USO6", "VIRTIO_NET_HDR_GSO_UDP_L4"];

Deno.test("virtio_net_hdr layout and offload constants match the C headers", async () => {
  const c = await runCProbe(PROBE);
  const expected: Record<string, number> = {
    "struct virtio_net_hdr": VirtioNetHdr.size,
    "struct virtio_net_hdr.flags": VirtioNetHdr.flags,
    "struct virtio_net_hdr.gso_type": VirtioNetHdr.gsoType,
    "struct virtio_net_hdr.hdr_len": VirtioNetHdr.hdrLen,
    "struct virtio_net_hdr.gso_size": VirtioNetHdr.gsoSize,
    "struct virtio_net_hdr.csum_start": VirtioNetHdr.csumStart,
    "struct virtio_net_hdr.csum_offset": VirtioNetHdr.csumOffset,
  };
  for (const [name, value] of Object.entries(TUN_OFFLOAD)) {
    if (!NEWER.includes(name) || name in c) expected[name] = value;
  }
  for (const [name, value] of Object.entries(expected)) {
    assert.equal(value, c[name], `${name}: binding says ${value}, C says ${c[name]}`);
  }
});

Deno.test("virtio header: encode and decode round-trip (little-endian fields)", () => {
  const header: VirtioHeader = {
    flags: 1,
    gsoType: 4,
    hdrLen: 0x1234,
    gsoSize: 1188,
    csumStart: 40,
    csumOffset: 16,
  };
  const bytes = new Uint8Array(12);
  encodeVirtioHeader(header, bytes, 2);
  assert.deepEqual(Array.from(bytes.subarray(2, 6)), [1, 4, 0x34, 0x12]);
  assert.deepEqual(decodeVirtioHeader(bytes, 2), header);
});

const V4 = { src: Uint8Array.of(10, 9, 0, 1), dst: Uint8Array.of(10, 9, 0, 2) };
const V6 = {
  src: Uint8Array.of(0xfd, 9, ...Array(13).fill(0), 1),
  dst: Uint8Array.of(0xfd, 9, ...Array(13).fill(0), 2),
};
const TIMESTAMP = { timestamp: { value: 0x01020304, echo: 0x0a0b0c0d } };

function payloadBytes(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

/** A TCP packet with a valid checksum; IPv4 ID `id` (header checksum fixed). */
function tcpPacket(
  addresses: { src: Uint8Array; dst: Uint8Array },
  seq: number,
  payload: Uint8Array,
  flags = TCP_ACK,
  id = 0,
  ports = { srcPort: 40000, dstPort: 5201 },
): Uint8Array {
  const out = new Uint8Array(100 + payload.length);
  const length = writeTcpPacket(out, {
    ...addresses,
    ...ports,
    seq,
    ack: 777,
    flags,
    window: 500,
    options: TIMESTAMP,
    payload,
  });
  const packet = out.slice(0, length);
  if (addresses.src.length === 4) setIpv4Id(packet, id);
  return packet;
}

function setIpv4Id(packet: Uint8Array, id: number): void {
  const view = new DataView(packet.buffer, packet.byteOffset);
  view.setUint16(4, id);
  view.setUint16(10, 0);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += view.getUint16(i);
  view.setUint16(10, ~foldSum(sum) & 0xffff);
}

/** The kernel's view of a super-packet: the TCP/UDP checksum field holds the pseudo-header sum. */
function partialChecksum(packet: Uint8Array, ipLength: number, protocol: number, at: number) {
  const v4 = ipLength === 20;
  const src = packet.subarray(v4 ? 12 : 8, v4 ? 16 : 24);
  const dst = packet.subarray(v4 ? 16 : 24, v4 ? 20 : 40);
  const sum = foldSum(pseudoHeaderSum(src, dst, protocol, packet.length - ipLength));
  new DataView(packet.buffer, packet.byteOffset).setUint16(ipLength + at, sum);
}

function collect(): SegmentSink & { segments: Uint8Array[] } {
  const segments: Uint8Array[] = [];
  return {
    segments,
    segment(length) {
      const out = new Uint8Array(length);
      segments.push(out);
      return out;
    },
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function tcpHeader(gsoType: number, ipLength: number, gsoSize: number): VirtioHeader {
  return {
    flags: TUN_OFFLOAD.VIRTIO_NET_HDR_F_NEEDS_CSUM,
    gsoType,
    hdrLen: ipLength + 32,
    gsoSize,
    csumStart: ipLength,
    csumOffset: 16,
  };
}

for (const family of [4, 6] as const) {
  Deno.test(`GSO split: a TCP/IPv${family} super-packet becomes MTU packets the parsers accept`, () => {
    const addresses = family === 4 ? V4 : V6;
    const ipLength = family === 4 ? 20 : 40;
    const data = payloadBytes(5000, family);
    const seq = 0xfffff000; // wraps past 2^32 in the third segment
    const flags = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR;
    const superPacket = tcpPacket(addresses, seq, data, flags, 0xfffe);
    partialChecksum(superPacket, ipLength, 6, 16);
    const original = superPacket.slice();
    const gsoType = family === 4
      ? TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV4
      : TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV6;
    const sink = collect();
    assert.equal(splitGso(superPacket, tcpHeader(gsoType, ipLength, 1188), sink), 5);
    assert.deepEqual(superPacket, original, "the input is left alone");
    const payloads: Uint8Array[] = [];
    sink.segments.forEach((segment, i) => {
      const ip = parseIp(segment);
      assert.ok(typeof ip !== "string", `segment ${i}: ${ip}`);
      const tcp = parseTcp(ip);
      assert.ok(typeof tcp !== "string", `segment ${i}: ${tcp}`); // checksum verified
      const last = i === 4;
      assert.equal(segment.length, ipLength + 32 + (last ? 5000 - 4 * 1188 : 1188));
      if (family === 4) {
        assert.equal((segment[4] << 8) | segment[5], (0xfffe + i) & 0xffff, "IPv4 ID");
      }
      assert.equal(tcp.seq, (seq + i * 1188) >>> 0);
      assert.equal(tcp.ack, 777);
      assert.equal(tcp.window, 500);
      assert.deepEqual(tcp.options.timestamp, TIMESTAMP.timestamp);
      const expectedFlags = TCP_ACK | (i === 0 ? TCP_CWR : 0) | (last ? TCP_PSH | TCP_FIN : 0);
      assert.equal(tcp.flags, expectedFlags, `segment ${i} flags`);
      payloads.push(tcp.payload);
    });
    assert.deepEqual(concat(payloads), data);
  });
}

Deno.test("GSO split: UDP_L4 super-packet: lengths and checksums per datagram", () => {
  const data = payloadBytes(3000, 9);
  const out = new Uint8Array(3100);
  const length = writeUdpPacket(out, { ...V4, srcPort: 5353, dstPort: 9999, payload: data });
  const superPacket = out.slice(0, length);
  partialChecksum(superPacket, 20, 17, 6);
  const sink = collect();
  const header: VirtioHeader = {
    flags: TUN_OFFLOAD.VIRTIO_NET_HDR_F_NEEDS_CSUM,
    gsoType: TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_UDP_L4,
    hdrLen: 28,
    gsoSize: 1200,
    csumStart: 20,
    csumOffset: 6,
  };
  assert.equal(splitGso(superPacket, header, sink), 3);
  const payloads = sink.segments.map((segment, i) => {
    const ip = parseIp(segment);
    assert.ok(typeof ip !== "string", `datagram ${i}: ${ip}`);
    const udp = parseUdp(ip);
    assert.ok(typeof udp !== "string", `datagram ${i}: ${udp}`);
    assert.notEqual((segment[26] << 8) | segment[27], 0, "a checksum is present");
    return udp.payload;
  });
  assert.deepEqual(payloads.map((p) => p.length), [1200, 1200, 600]);
  assert.deepEqual(concat(payloads), data);
});

Deno.test("GSO split: refuses what it cannot split", () => {
  const packet = tcpPacket(V4, 1, payloadBytes(3000, 1));
  const tcp4 = tcpHeader(TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV4, 20, 1188);
  assert.equal(splitGso(packet, { ...tcp4, gsoType: 3 }, collect()), "unsupported-gso-type");
  assert.equal(
    splitGso(packet, { ...tcp4, gsoType: TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV6 }, collect()),
    "ip-version-mismatch",
  );
  assert.equal(splitGso(packet, { ...tcp4, gsoSize: 0 }, collect()), "zero-gso-size");
  assert.equal(splitGso(packet, { ...tcp4, csumStart: 24 }, collect()), "bad-ip-header");
  assert.equal(splitGso(packet.subarray(0, 30), tcp4, collect()), "bad-transport-header");
});

Deno.test("checksum completion: NEEDS_CSUM on a plain packet yields the real checksum", () => {
  const packet = tcpPacket(V6, 42, payloadBytes(777, 3), TCP_ACK | TCP_PSH);
  const expected = packet.slice();
  partialChecksum(packet, 40, 6, 16);
  assert.notDeepEqual(packet, expected);
  assert.ok(completeChecksum(packet, 40, 16));
  assert.deepEqual(packet, expected);
  assert.equal(completeChecksum(packet, 40, packet.length), false, "offsets past the end");
});

Deno.test("TCP coalescing: contiguous segments join; other flows, gaps, bad checksums do not", () => {
  const mss = 1188;
  const seg = (i: number, flags = TCP_ACK, length = mss) =>
    tcpPacket(V4, 1000 + i * mss, payloadBytes(length, i), flags, 100 + i);
  const otherFlow = tcpPacket(V4, 5, payloadBytes(100, 0), TCP_ACK, 7, {
    srcPort: 40001,
    dstPort: 5201,
  });
  const corrupt = seg(4);
  corrupt[corrupt.length - 1] ^= 1;
  const ack = tcpPacket(V4, 1, new Uint8Array(0));
  const batch = [
    seg(0),
    seg(1),
    otherFlow,
    seg(2),
    seg(3, TCP_ACK | TCP_PSH), // PSH ends the group
    corrupt,
    seg(5),
    seg(6, TCP_ACK, 500), // shorter: ends the group
    seg(7),
    seg(9), // a gap: starts a new group
    ack,
  ];
  const groups = planWrites(batch);
  assert.deepEqual(
    groups.map((g) => g.packets.map((p) => batch.indexOf(p))),
    [[0, 1, 3, 4], [2], [5], [6, 7], [8], [9], [10]],
  );
  assert.deepEqual(groups.map((g) => g.verified), [true, true, false, true, true, true, false]);

  const target = new Uint8Array(VIRTIO_HEADER_BYTES + 0xffff);
  const length = encodeWrite(groups[0], target);
  assert.equal(length, encodedLength(groups[0]));
  const header = decodeVirtioHeader(target);
  assert.deepEqual(header, {
    flags: TUN_OFFLOAD.VIRTIO_NET_HDR_F_NEEDS_CSUM,
    gsoType: TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV4,
    hdrLen: 52,
    gsoSize: mss,
    csumStart: 20,
    csumOffset: 16,
  });
  const superPacket = target.slice(VIRTIO_HEADER_BYTES, length);
  assert.equal(superPacket.length, 52 + 4 * mss);
  assert.equal(superPacket[33], TCP_ACK | TCP_PSH, "PSH of the last segment");
  // What the kernel does with it: segmenting gives back exactly the original segments.
  const sink = collect();
  assert.equal(splitGso(superPacket, header, sink), 4);
  assert.deepEqual(sink.segments, [batch[0], batch[1], batch[3], batch[4]]);
  // ...and completing its partial checksum gives a valid super-packet.
  assert.ok(completeChecksum(superPacket, 20, 16));
  const ip = parseIp(superPacket);
  assert.ok(typeof ip !== "string" && typeof parseTcp(ip) !== "string");

  const single = encodeWrite(groups[1], target);
  assert.equal(decodeVirtioHeader(target).flags, TUN_OFFLOAD.VIRTIO_NET_HDR_F_DATA_VALID);
  assert.deepEqual(target.subarray(VIRTIO_HEADER_BYTES, single), otherFlow);
  encodeWrite(groups[2], target);
  assert.deepEqual(decodeVirtioHeader(target).flags, 0, "an unverified packet is not DATA_VALID");
});

Deno.test("TCP coalescing over IPv6: a super-packet splits back into its segments", () => {
  const segments = [0, 1, 2].map((i) => tcpPacket(V6, 9 + i * 1168, payloadBytes(1168, i)));
  const groups = planWrites(segments);
  assert.equal(groups.length, 1);
  const target = new Uint8Array(VIRTIO_HEADER_BYTES + 0xffff);
  const length = encodeWrite(groups[0], target);
  const header = decodeVirtioHeader(target);
  assert.equal(header.gsoType, TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV6);
  const superPacket = target.slice(VIRTIO_HEADER_BYTES, length);
  assert.equal((superPacket[4] << 8) | superPacket[5], superPacket.length - 40);
  const sink = collect();
  assert.equal(splitGso(superPacket, header, sink), 3);
  assert.deepEqual(sink.segments, segments);
});
