/** The typed attributes a STUN message carries, one union member per attribute type. */
import type { SocketAddress } from "../net/address.ts";

/** Attributes whose value is one transport address. */
export type AddressAttributeType =
  | "MAPPED-ADDRESS"
  | "XOR-MAPPED-ADDRESS"
  | "RESPONSE-ORIGIN"
  | "OTHER-ADDRESS"
  | "ALTERNATE-SERVER";

/** Attributes whose value is UTF-8 text. */
export type TextAttributeType = "USERNAME" | "REALM" | "NONCE" | "SOFTWARE";

/** Attributes whose value is an HMAC over the message before them. */
export type IntegrityAttributeType = "MESSAGE-INTEGRITY" | "MESSAGE-INTEGRITY-SHA256";

/** An address attribute; XOR-MAPPED-ADDRESS is shown un-XORed. IPv4 is dotted, never v4-mapped. */
export type AddressAttribute = {
  [T in AddressAttributeType]: { type: T; address: SocketAddress };
}[AddressAttributeType];

/** A text attribute, decoded from strict UTF-8 (padding excluded). */
export type TextAttribute = {
  [T in TextAttributeType]: { type: T; value: string };
}[TextAttributeType];

/** MESSAGE-INTEGRITY (20 bytes) or MESSAGE-INTEGRITY-SHA256 (16-32 bytes) as received. */
export type IntegrityAttribute = {
  [T in IntegrityAttributeType]: { type: T; hmac: Uint8Array };
}[IntegrityAttributeType];

/** ICE-CONTROLLED or ICE-CONTROLLING (RFC 8445): the agent's 64-bit tie-breaker. */
export type IceRoleAttribute = {
  [T in "ICE-CONTROLLED" | "ICE-CONTROLLING"]: { type: T; tieBreaker: bigint };
}["ICE-CONTROLLED" | "ICE-CONTROLLING"];

/** An attribute this codec does not know, kept as bytes (padding excluded). */
export interface UnknownAttribute {
  type: "unknown";
  /** The attribute type code; below 0x8000 it is comprehension-required. */
  code: number;
  /** The value. */
  value: Uint8Array;
}

/** One STUN attribute. */
export type StunAttribute =
  | AddressAttribute
  | TextAttribute
  | IntegrityAttribute
  | IceRoleAttribute
  /** RFC 5780: ask the server to answer from its other IP and/or port. */
  | { type: "CHANGE-REQUEST"; changeIp: boolean; changePort: boolean }
  /** RFC 5780: the port the response should go to (same IP as the request came from). */
  | { type: "RESPONSE-PORT"; port: number }
  /** RFC 5780: bytes of no meaning that make a message bigger (sent as zeros). */
  | { type: "PADDING"; length: number }
  /** An error response's code (300-699) and reason phrase. */
  | { type: "ERROR-CODE"; code: number; reason: string }
  /** The comprehension-required types a 420 response did not understand. */
  | { type: "UNKNOWN-ATTRIBUTES"; types: number[] }
  /** ICE (RFC 8445): the candidate pair priority. */
  | { type: "PRIORITY"; priority: number }
  /** ICE (RFC 8445): nominates the pair; no value. */
  | { type: "USE-CANDIDATE" }
  /** CRC-32 of the message before it, XOR 0x5354554E. */
  | { type: "FINGERPRINT"; crc: number }
  | UnknownAttribute;

/** The attribute union member with a given `type`. */
export type AttributeOfType<T extends StunAttribute["type"]> = Extract<StunAttribute, { type: T }>;
