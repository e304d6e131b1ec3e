/** IP protocol numbers (IANA "Assigned Internet Protocol Numbers") the codecs handle. */

/** ICMP for IPv4. */
export const PROTOCOL_ICMP = 1;
/** TCP. */
export const PROTOCOL_TCP = 6;
/** UDP. */
export const PROTOCOL_UDP = 17;
/** ICMPv6. */
export const PROTOCOL_ICMPV6 = 58;
