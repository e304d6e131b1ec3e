/**
 * Run inside a test namespace: `deno run -A tun_echo_main.ts` creates TUN
 * `ztna0` (100.64.0.1/32 and fd7a:7a7a::1/128, routes 100.80.0.0/16 and
 * fd7a:7a7a:80::/48), prints `READY ztna0` and answers every ICMP and ICMPv6
 * echo request read from it by writing the reply back. If reading fails it
 * prints `READ-ERROR <message>`. On SIGTERM it closes the device and prints
 * one JSON line: the echo requests seen, how many other packets came, and how
 * long `close()` took. If creation fails it prints the error and exits 1.
 */
import ipaddr from "ipaddr.js";
import { TunDevice } from "../../lib/tun/mod.ts";

/** One echo request as read from the device. */
export interface SeenRequest {
  family: 4 | 6;
  protocol: number;
  source: string;
  destination: string;
  identifier: number;
  sequence: number;
  /** The first 8 bytes of echo data after ping's timestamp, as hex. */
  pattern: string;
}

let device: TunDevice;
try {
  device = TunDevice.create({
    name: "ztna0",
    mtu: 1400,
    addresses: ["100.64.0.1/32", "fd7a:7a7a::1/128"],
    routes: ["100.80.0.0/16", "fd7a:7a7a:80::/48"],
  });
} catch (error) {
  console.error((error as Error).message);
  Deno.exit(1);
}

const seen: SeenRequest[] = [];
let other = 0;
device.packets((packet) => {
  const reply = packet[0] >> 4 === 4 ? echoReply4(packet) : echoReply6(packet);
  if (reply) device.write(reply);
  else other++;
}).catch((error: Error) => console.log(`READ-ERROR ${error.message}`));

Deno.addSignalListener("SIGTERM", async () => {
  const started = performance.now();
  await device.close();
  const closeMs = performance.now() - started;
  console.log(JSON.stringify({ seen, other, closeMs }));
  Deno.exit(0);
});
// Nothing else keeps the process alive once the reader has failed.
setInterval(() => {}, 60_000);
console.log(`READY ${device.name}`);

/** The reply to an IPv4 ICMP echo request (records it), or null for anything else. */
function echoReply4(packet: Uint8Array): Uint8Array | null {
  const header = (packet[0] & 0xf) * 4;
  if (packet[9] !== 1 || packet[header] !== 8) return null;
  record(packet, 4, 12, 16, header);
  const reply = packet.slice();
  reply.set(packet.subarray(16, 20), 12);
  reply.set(packet.subarray(12, 16), 16); // swapping leaves the header checksum valid
  reply[header] = 0;
  setChecksum(reply, header, reply.subarray(header), []);
  return reply;
}

/** The reply to an ICMPv6 echo request (records it), or null for anything else. */
function echoReply6(packet: Uint8Array): Uint8Array | null {
  if (packet[6] !== 58 || packet[40] !== 128) return null;
  record(packet, 6, 8, 24, 40);
  const reply = packet.slice();
  reply.set(packet.subarray(24, 40), 8);
  reply.set(packet.subarray(8, 24), 24);
  reply[40] = 129;
  const length = reply.length - 40;
  const pseudo = [...reply.subarray(8, 40), 0, 0, length >> 8, length & 0xff, 0, 0, 0, 58];
  setChecksum(reply, 40, reply.subarray(40), pseudo);
  return reply;
}

function record(packet: Uint8Array, family: 4 | 6, src: number, dst: number, icmp: number) {
  const view = new DataView(packet.buffer, packet.byteOffset);
  const size = family === 4 ? 4 : 16;
  seen.push({
    family,
    protocol: family === 4 ? packet[9] : packet[6],
    source: formatIp(packet.subarray(src, src + size)),
    destination: formatIp(packet.subarray(dst, dst + size)),
    identifier: view.getUint16(icmp + 4),
    sequence: view.getUint16(icmp + 6),
    // ping puts a 16-byte timestamp first, then the -p pattern.
    pattern: hex(packet.subarray(icmp + 8 + 16, icmp + 8 + 24)),
  });
}

/** Zeroes the checksum at `at + 2` of `packet`, then writes that of `pseudo` + `data` there. */
function setChecksum(packet: Uint8Array, at: number, data: Uint8Array, pseudo: number[]): void {
  packet[at + 2] = 0;
  packet[at + 3] = 0;
  let sum = 0;
  const add = (bytes: ArrayLike<number>) => {
    for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i] << 8) | (bytes[i + 1] ?? 0);
  };
  add(pseudo);
  add(data);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const checksum = ~sum & 0xffff;
  packet[at + 2] = checksum >> 8;
  packet[at + 3] = checksum & 0xff;
}

function formatIp(bytes: Uint8Array): string {
  return ipaddr.fromByteArray(Array.from(bytes)).toString();
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
