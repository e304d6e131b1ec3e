/**
 * Allocation-light, zero-copy IP packet codecs for the user-space network stack: IPv4/IPv6
 * (with extension headers), ICMP/ICMPv6 echo and destination unreachable, UDP and TCP, and
 * the Internet checksum. Parsers take `Uint8Array` views (byteOffset honoured), return views
 * into them, and report malformed input as a `PacketError` string code instead of throwing;
 * writers fill a caller-provided buffer from offset 0 and throw RangeError only on misuse.
 */
export { formatIpAddress, ipAddressEquals, parseIpAddress } from "./address.ts";
export {
  ChecksumAccumulator,
  checksumVerifies,
  finishChecksum,
  foldSum,
  internetChecksum,
  pseudoHeaderSum,
  pseudoHeaderSumV4,
  pseudoHeaderSumV6,
  sumWords,
} from "./checksum.ts";
export { isPacketError, PACKET_ERRORS, type PacketError } from "./errors.ts";
export {
  fillIcmpChecksum,
  ICMP_HEADER_LENGTH,
  type IcmpMessage,
  ICMPV4_DESTINATION_UNREACHABLE,
  ICMPV4_ECHO_REPLY,
  ICMPV4_ECHO_REQUEST,
  ICMPV6_DESTINATION_UNREACHABLE,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  parseIcmp,
  writeEchoReply,
} from "./icmp.ts";
export {
  UNREACHABLE_V4,
  UNREACHABLE_V6,
  type UnreachableOptions,
  writeDestinationUnreachable,
} from "./icmp_unreachable.ts";
export { type IpHeaderInit, ipHeaderLength, type IpPacket, parseIp, writeIpHeader } from "./ip.ts";
export type { IpFields } from "./ip_fields.ts";
export {
  DEFAULT_HOP_LIMIT,
  IPV4_HEADER_LENGTH,
  type Ipv4HeaderInit,
  type Ipv4Packet,
  parseIpv4,
  writeIpv4Header,
} from "./ipv4.ts";
export {
  IPV6_HEADER_LENGTH,
  IPV6_MIN_MTU,
  type Ipv6HeaderInit,
  type Ipv6Packet,
  parseIpv6,
  writeIpv6Header,
} from "./ipv6.ts";
export { PROTOCOL_ICMP, PROTOCOL_ICMPV6, PROTOCOL_TCP, PROTOCOL_UDP } from "./protocols.ts";
export {
  parseTcp,
  TCP_ACK,
  TCP_CWR,
  TCP_ECE,
  TCP_FIN,
  TCP_HEADER_LENGTH,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  tcpHeadersLength,
  type TcpPacketInit,
  type TcpSegment,
  writeTcpPacket,
} from "./tcp.ts";
export {
  MAX_TCP_OPTIONS_LENGTH,
  MAX_WINDOW_SCALE,
  parseTcpOptions,
  type TcpOptions,
  tcpOptionsLength,
  type TcpTimestamp,
} from "./tcp_options.ts";
export { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from "./tcp_seq.ts";
export {
  parseUdp,
  UDP_HEADER_LENGTH,
  type UdpDatagram,
  udpHeadersLength,
  type UdpPacketInit,
  writeUdpPacket,
} from "./udp.ts";
