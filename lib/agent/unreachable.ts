/**
 * What the agent answers, on the TUN, for a packet to a service that has no
 * live session (its connector left, the session is being re-opened): a TCP
 * segment gets a RST, so connections fail at once instead of hanging; anything
 * else gets an ICMP host unreachable. Nothing answers an ICMP error or a RST.
 */
import {
  type IpPacket,
  isPacketError,
  parseTcp,
  PROTOCOL_TCP,
  UNREACHABLE_V4,
  UNREACHABLE_V6,
  writeDestinationUnreachable,
} from "../packet/mod.ts";
import { resetFor } from "../tcp/segment.ts";

/** Room for any ICMP error the agent writes (at most 1280 bytes for IPv6). */
const scratch = new Uint8Array(1_280);

/**
 * The reply to `packet` (parsed as `ip`) for a service that cannot be reached
 * now, or undefined when none may be sent. Valid until the next call.
 */
export function unreachableReply(packet: Uint8Array, ip: IpPacket): Uint8Array | undefined {
  if (ip.protocol === PROTOCOL_TCP) {
    const segment = parseTcp(ip);
    return isPacketError(segment) ? undefined : resetFor(ip, segment);
  }
  const code = ip.version === 4 ? UNREACHABLE_V4.host : UNREACHABLE_V6.address;
  const length = writeDestinationUnreachable(packet, scratch, { code });
  return typeof length === "number" ? scratch.subarray(0, length) : undefined;
}
