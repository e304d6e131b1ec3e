/**
 * The pure half of a STUN server for NAT-behaviour tests: what to answer to one datagram.
 * Binding requests get a success response (XOR-MAPPED-ADDRESS, then OTHER-ADDRESS and
 * RESPONSE-ORIGIN as room allows) from the address CHANGE-REQUEST asks for, or a 420 when they
 * carry a comprehension-required attribute this server does not implement (RESPONSE-PORT
 * included) or ask for a change it has no address for. Everything else is dropped with a
 * reason: malformed messages, indications, responses, other methods. No answer is ever more
 * than three times the size of its request (RFC 8489 §6.3.4's amplification concern): optional
 * attributes are left out first, and an answer that still would not fit is dropped.
 */
import type { SocketAddress } from "../net/address.ts";
import type { StunAttribute } from "./attributes.ts";
import { ATTRIBUTE_CODES, METHOD_BINDING, STUN_HEADER_LENGTH } from "./constants.ts";
import { decodeStunMessage } from "./decode.ts";
import { encodeStunMessage } from "./encode.ts";
import { StunError, type StunErrorReason } from "./errors.ts";
import { getAttribute } from "./message.ts";
import { ipToBytes } from "./socket_address.ts";
import {
  isWildcardIp,
  otherAddress,
  responseOrigin,
  type StunServerAddresses,
} from "./server_addresses.ts";

/** An answer is never larger than this many times its request. */
export const MAX_AMPLIFICATION = 3;

/** RESPONSE-PORT: comprehension-required, known to the codec, not implemented here. */
const RESPONSE_PORT = ATTRIBUTE_CODES["RESPONSE-PORT"];
const CHANGE_REQUEST = ATTRIBUTE_CODES["CHANGE-REQUEST"];

/** Why a datagram got no answer. */
export type StunDropReason =
  /** Not a well-formed STUN message (`detail` says which rule it broke). */
  | "malformed"
  /** A well-formed indication or response: a server answers only requests. */
  | "not-request"
  /** A request for another method than Binding. */
  | "unknown-method"
  /** An answer that would exceed MAX_AMPLIFICATION times the request. */
  | "oversize";

/** What to do with one datagram. */
export type StunReply =
  | {
    kind: "answer";
    /** The encoded response. */
    bytes: Uint8Array;
    /** The server address it must leave from. */
    origin: SocketAddress;
    /** Its class: a success, or an error (420). */
    stunClass: "success" | "error";
  }
  | { kind: "drop"; reason: StunDropReason; malformed?: StunErrorReason };

/** Bytes an address attribute takes on the wire (header included). */
function addressAttributeBytes(address: SocketAddress): number {
  return 4 + 4 + ipToBytes(address.hostname).length;
}

/**
 * The answer to `datagram`, which came from `from` to the server address `receivedOn` (one
 * of `addresses`' listening addresses). Pure: rate limiting and sending are the caller's.
 */
export function answerStun(
  datagram: Uint8Array,
  from: SocketAddress,
  receivedOn: SocketAddress,
  addresses: StunServerAddresses,
): StunReply {
  let request;
  try {
    request = decodeStunMessage(datagram);
  } catch (error) {
    if (!(error instanceof StunError)) throw error;
    return { kind: "drop", reason: "malformed", malformed: error.reason };
  }
  if (request.stunClass !== "request") return { kind: "drop", reason: "not-request" };
  if (request.method !== METHOD_BINDING) return { kind: "drop", reason: "unknown-method" };
  const budget = MAX_AMPLIFICATION * datagram.length;

  const unknown = [...request.unknownRequired];
  if (getAttribute(request, "RESPONSE-PORT")) unknown.push(RESPONSE_PORT);
  const change = getAttribute(request, "CHANGE-REQUEST");
  const changeIp = change?.changeIp ?? false;
  const changePort = change?.changePort ?? false;
  const origin = responseOrigin(addresses, receivedOn, changeIp, changePort);
  if (origin === undefined) unknown.push(CHANGE_REQUEST);
  if (unknown.length > 0 || origin === undefined) {
    const bytes = encodeStunMessage({
      stunClass: "error",
      method: METHOD_BINDING,
      transactionId: request.transactionId,
      attributes: [
        { type: "ERROR-CODE", code: 420, reason: "Unknown Attribute" },
        { type: "UNKNOWN-ATTRIBUTES", types: [...new Set(unknown)] },
      ],
    });
    if (bytes.length > budget) return { kind: "drop", reason: "oversize" };
    return { kind: "answer", bytes, origin: receivedOn, stunClass: "error" };
  }

  // XOR-MAPPED-ADDRESS is the answer; the RFC 5780 attributes and FINGERPRINT come as room allows.
  const mapped: StunAttribute = { type: "XOR-MAPPED-ADDRESS", address: from };
  let size = STUN_HEADER_LENGTH + addressAttributeBytes(from);
  if (size > budget) return { kind: "drop", reason: "oversize" };
  const optional: StunAttribute[] = [];
  const other = otherAddress(addresses, receivedOn);
  if (other && size + addressAttributeBytes(other) <= budget) {
    optional.push({ type: "OTHER-ADDRESS", address: other });
    size += addressAttributeBytes(other);
  }
  let withOrigin = false;
  if (!isWildcardIp(origin.hostname) && size + addressAttributeBytes(origin) <= budget) {
    withOrigin = true;
    size += addressAttributeBytes(origin);
  }
  const fingerprint = request.hasFingerprint && size + 8 <= budget;
  const attributes: StunAttribute[] = [mapped];
  if (withOrigin) attributes.push({ type: "RESPONSE-ORIGIN", address: origin });
  attributes.push(...optional);
  const bytes = encodeStunMessage({
    stunClass: "success",
    method: METHOD_BINDING,
    transactionId: request.transactionId,
    attributes,
  }, { fingerprint });
  return { kind: "answer", bytes, origin, stunClass: "success" };
}
