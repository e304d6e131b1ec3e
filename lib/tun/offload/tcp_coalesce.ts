/**
 * GRO for TUN writes: consecutive TCP segments of one flow in a batch (same
 * addresses, ports, ACK number and window, contiguous sequence numbers, flags
 * ACK with PSH on the last only, IP headers alike, identical TCP options,
 * equal payload sizes but a shorter last) are planned into one super-packet
 * that the kernel receives with a virtio header (gso_type TCPV4/TCPV6,
 * NEEDS_CSUM), so its TCP handles one large packet instead of many. Each
 * segment's checksum is verified before it joins; anything else is written
 * alone.
 */
import { TUN_OFFLOAD } from "../../../ffi/tun.ts";
import { checksumVerifies, foldSum, internetChecksum, pseudoHeaderSum } from "../../packet/mod.ts";
import { PLAIN_HEADER, VIRTIO_HEADER_BYTES, type VirtioHeader } from "./virtio_header.ts";
import { encodeVirtioHeader } from "./virtio_header.ts";

/** One write to the TUN: a packet alone, or segments to be sent as one super-packet. */
export interface WriteGroup {
  /** The packets, in sequence order; more than one only for a coalesced TCP flow. */
  packets: Uint8Array[];
  /** IP header bytes (coalesced groups only). */
  ipLength: number;
  /** TCP header bytes (coalesced groups only). */
  tcpLength: number;
  /** Payload bytes of every packet but the last (coalesced groups only). */
  gsoSize: number;
  /** Whether the single packet's TCP checksum was verified (it may be marked DATA_VALID). */
  verified: boolean;
}

const TCP = 6;
const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
/** Largest IPv4 total length / IPv6 payload length. */
const MAX_IP_LENGTH = 0xffff;

/** The facts about one coalescible TCP segment. */
interface Segment {
  ipLength: number;
  tcpLength: number;
  payload: number;
  seq: number;
  psh: boolean;
}

/** A group still open for appending, with its next expected sequence number. */
interface OpenGroup {
  group: WriteGroup;
  nextSeq: number;
  /** Bytes the super-packet would have (IP total length; IPv6: payload length). */
  length: number;
  closed: boolean;
}

/** Plans the writes for `packets` (kept in order, apart from segments joining earlier ones). */
export function planWrites(packets: readonly Uint8Array[]): WriteGroup[] {
  const groups: WriteGroup[] = [];
  const open = new Map<string, OpenGroup>();
  for (const packet of packets) {
    const segment = coalescibleSegment(packet);
    if (!segment) {
      groups.push(single(packet, false));
      continue;
    }
    const key = flowKey(packet, segment.ipLength);
    const current = open.get(key);
    if (current && canAppend(current, packet, segment)) {
      current.group.packets.push(packet);
      current.nextSeq = (current.nextSeq + segment.payload) >>> 0;
      current.length += segment.payload;
      if (segment.psh || segment.payload < current.group.gsoSize) current.closed = true;
      continue;
    }
    const group: WriteGroup = {
      packets: [packet],
      ipLength: segment.ipLength,
      tcpLength: segment.tcpLength,
      gsoSize: segment.payload,
      verified: true,
    };
    groups.push(group);
    open.set(key, {
      group,
      nextSeq: (segment.seq + segment.payload) >>> 0,
      length: packet[0] >> 4 === 4 ? packet.length : packet.length - 40,
      closed: segment.psh,
    });
  }
  return groups;
}

function single(packet: Uint8Array, verified: boolean): WriteGroup {
  return { packets: [packet], ipLength: 0, tcpLength: 0, gsoSize: 0, verified };
}

function canAppend(current: OpenGroup, packet: Uint8Array, segment: Segment): boolean {
  const { group } = current;
  const first = group.packets[0];
  if (
    current.closed || segment.seq !== current.nextSeq || segment.payload > group.gsoSize ||
    segment.tcpLength !== group.tcpLength || segment.ipLength !== group.ipLength ||
    current.length + segment.payload > MAX_IP_LENGTH
  ) {
    return false;
  }
  if (!ipHeadersAlike(first, packet)) return false;
  const optionsAt = segment.ipLength + 20;
  for (let i = optionsAt; i < segment.ipLength + segment.tcpLength; i++) {
    if (first[i] !== packet[i]) return false;
  }
  return true;
}

/** TOS, DF and TTL (IPv4) or traffic class, flow label and hop limit (IPv6) are equal. */
function ipHeadersAlike(a: Uint8Array, b: Uint8Array): boolean {
  if (a[0] >> 4 === 4) return a[1] === b[1] && a[6] === b[6] && a[8] === b[8];
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3] && a[7] === b[7];
}

/** The flow and everything that must be equal in its segments' TCP headers but seq/flags. */
function flowKey(packet: Uint8Array, ipLength: number): string {
  const v4 = packet[0] >> 4 === 4;
  const from = v4 ? 12 : 8;
  const to = v4 ? 20 : 40;
  let key = "";
  for (let i = from; i < to; i++) key += String.fromCharCode(packet[i]);
  // Ports (0-3), ACK number (8-11), window (14-15).
  for (const i of [0, 1, 2, 3, 8, 9, 10, 11, 14, 15]) {
    key += String.fromCharCode(packet[ipLength + i]);
  }
  return key;
}

/**
 * The segment facts when `packet` may be coalesced: well-formed IPv4 (no options,
 * no fragment) or IPv6 (no extension headers) TCP with payload, flags ACK or
 * ACK|PSH, and a checksum that verifies. Otherwise null.
 */
function coalescibleSegment(packet: Uint8Array): Segment | null {
  const version = packet[0] >> 4;
  let ipLength: number;
  if (version === 4) {
    ipLength = 20;
    if (
      packet.length < 40 || packet[0] !== 0x45 || packet[9] !== TCP ||
      ((packet[2] << 8) | packet[3]) !== packet.length ||
      (packet[6] & 0x3f) !== 0 || packet[7] !== 0 // MF, fragment offset
    ) {
      return null;
    }
  } else if (version === 6) {
    ipLength = 40;
    if (
      packet.length < 60 || packet[6] !== TCP ||
      ((packet[4] << 8) | packet[5]) !== packet.length - 40
    ) {
      return null;
    }
  } else {
    return null;
  }
  const tcpLength = (packet[ipLength + 12] >> 4) * 4;
  const payload = packet.length - ipLength - tcpLength;
  const flags = packet[ipLength + 13];
  if (tcpLength < 20 || payload <= 0 || (flags !== TCP_ACK && flags !== (TCP_ACK | TCP_PSH))) {
    return null;
  }
  const v4 = version === 4;
  const source = packet.subarray(v4 ? 12 : 8, v4 ? 16 : 24);
  const destination = packet.subarray(v4 ? 16 : 24, v4 ? 20 : 40);
  const pseudo = pseudoHeaderSum(source, destination, TCP, packet.length - ipLength);
  if (!checksumVerifies(packet, ipLength, packet.length, pseudo)) return null;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.length);
  return {
    ipLength,
    tcpLength,
    payload,
    seq: view.getUint32(ipLength + 4),
    psh: (flags & TCP_PSH) !== 0,
  };
}

/** Bytes `encodeWrite` needs for `group`: its virtio header and the (super-)packet. */
export function encodedLength(group: WriteGroup): number {
  let length = VIRTIO_HEADER_BYTES + group.packets[0].length;
  const headers = group.ipLength + group.tcpLength;
  for (let i = 1; i < group.packets.length; i++) length += group.packets[i].length - headers;
  return length;
}

/**
 * Writes `group` into `target` (at least `encodedLength(group)` bytes) as a
 * virtio header plus packet, ready for one TUN write; returns the bytes used.
 * A lone packet gets a plain header (DATA_VALID if its checksum was verified);
 * a coalesced group becomes a super-packet whose TCP checksum field holds the
 * pseudo-header sum for the kernel to complete (NEEDS_CSUM).
 */
export function encodeWrite(group: WriteGroup, target: Uint8Array): number {
  const first = group.packets[0];
  if (group.packets.length === 1) {
    const header: VirtioHeader = group.verified
      ? { ...PLAIN_HEADER, flags: TUN_OFFLOAD.VIRTIO_NET_HDR_F_DATA_VALID }
      : PLAIN_HEADER;
    encodeVirtioHeader(header, target);
    target.set(first, VIRTIO_HEADER_BYTES);
    return VIRTIO_HEADER_BYTES + first.length;
  }
  const { ipLength, tcpLength } = group;
  const headers = ipLength + tcpLength;
  const packet = target.subarray(VIRTIO_HEADER_BYTES);
  packet.set(first);
  let end = first.length;
  for (let i = 1; i < group.packets.length; i++) {
    const next = group.packets[i];
    packet.set(next.subarray(headers), end);
    end += next.length - headers;
  }
  const lastPacket = group.packets[group.packets.length - 1];
  packet[ipLength + 13] |= lastPacket[ipLength + 13] & TCP_PSH;
  const view = new DataView(packet.buffer, packet.byteOffset, end);
  const v4 = first[0] >> 4 === 4;
  if (v4) {
    view.setUint16(2, end);
    view.setUint16(10, 0);
    view.setUint16(10, internetChecksum(packet, 0, ipLength));
  } else {
    view.setUint16(4, end - ipLength);
  }
  const source = packet.subarray(v4 ? 12 : 8, v4 ? 16 : 24);
  const destination = packet.subarray(v4 ? 16 : 24, v4 ? 20 : 40);
  view.setUint16(
    ipLength + 16,
    foldSum(pseudoHeaderSum(source, destination, TCP, end - ipLength)),
  );
  encodeVirtioHeader({
    flags: TUN_OFFLOAD.VIRTIO_NET_HDR_F_NEEDS_CSUM,
    gsoType: v4 ? TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV4 : TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV6,
    hdrLen: headers,
    gsoSize: group.gsoSize,
    csumStart: ipLength,
    csumOffset: 16,
  }, target);
  return VIRTIO_HEADER_BYTES + end;
}
