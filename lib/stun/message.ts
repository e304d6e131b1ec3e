/**
 * RFC 8489 STUN messages: the types the codec decodes to and encodes from, and lookups of
 * attributes in them. The codec itself is in decode.ts and encode.ts; `mod.ts` exports it all.
 */
import type { SocketAddress } from "../net/address.ts";
import type { AttributeOfType, StunAttribute } from "./attributes.ts";
import type { StunClass } from "./constants.ts";

/** A STUN message: what the encoder takes. */
export interface StunMessage {
  /** Request, indication, success response or error response. */
  stunClass: StunClass;
  /** The method, 12 bits (Binding is 0x001). */
  method: number;
  /** The 12-byte (96-bit) transaction ID. */
  transactionId: Uint8Array;
  /**
   * The attributes in order. When encoding, MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT are not
   * listed: the encoder appends them when asked.
   */
  attributes: StunAttribute[];
}

/** Where a MESSAGE-INTEGRITY(-SHA256) attribute lies, for checking it. */
export interface IntegrityPosition {
  /** Offset of the attribute's header in the message. */
  offset: number;
  /** The HMAC as received. */
  hmac: Uint8Array;
}

/** A decoded message: the attributes plus what checking it needs. */
export interface DecodedStunMessage extends StunMessage {
  /**
   * The attributes as received, up to the first MESSAGE-INTEGRITY and, after it, only
   * MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (RFC 8489 §14.5: others after it are ignored).
   */
  attributes: StunAttribute[];
  /** The whole message: a view of the decoder's input, not a copy. */
  bytes: Uint8Array;
  /**
   * Comprehension-required attribute types (below 0x8000) the codec does not know, each once,
   * in order of appearance: a server answers a request with any by a 420 listing them.
   */
  unknownRequired: number[];
  /** The MESSAGE-INTEGRITY attribute, if there is one: see `verifyMessageIntegrity`. */
  integrity?: IntegrityPosition;
  /** The MESSAGE-INTEGRITY-SHA256 attribute, if there is one. */
  integritySha256?: IntegrityPosition;
  /** Whether a FINGERPRINT was present (the decoder refuses one that does not match). */
  hasFingerprint: boolean;
}

/** The first attribute of a type (RFC 8489 §14: only the first occurrence counts). */
export function getAttribute<T extends StunAttribute["type"]>(
  message: StunMessage,
  type: T,
): AttributeOfType<T> | undefined {
  for (const attribute of message.attributes) {
    if (attribute.type === type) return attribute as AttributeOfType<T>;
  }
  return undefined;
}

/** The reflexive address a response reports: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS. */
export function mappedAddressOf(message: StunMessage): SocketAddress | undefined {
  return getAttribute(message, "XOR-MAPPED-ADDRESS")?.address ??
    getAttribute(message, "MAPPED-ADDRESS")?.address;
}
