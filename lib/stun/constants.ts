/** STUN wire constants: header layout, classes, methods and attribute type codes (IANA). */

/** The magic cookie every RFC 5389/8489 message carries at bytes 4..8. */
export const MAGIC_COOKIE = 0x2112a442;
/** Length of the STUN header. */
export const STUN_HEADER_LENGTH = 20;
/** Length of the transaction ID. */
export const TRANSACTION_ID_LENGTH = 12;
/** XORed into the CRC-32 of a message to make its FINGERPRINT (ASCII "STUN"). */
export const FINGERPRINT_XOR = 0x5354554e;

/**
 * The first bytes of STUN datagrams a server or client sharing a socket with QUIC claims:
 * requests and indications (0x00), success and error responses (0x01).
 */
export const STUN_FIRST_BYTES: readonly number[] = [0x00, 0x01];

/** The Binding method, the only one RFC 8489 defines. */
export const METHOD_BINDING = 0x001;

/** A message's class: the two class bits of its type. */
export type StunClass = "request" | "indication" | "success" | "error";

/** The class bits' value (C1C0) of each class. */
export const CLASS_BITS: Readonly<Record<StunClass, number>> = {
  request: 0b00,
  indication: 0b01,
  success: 0b10,
  error: 0b11,
};

/** Classes by their two-bit value. */
export const CLASSES: readonly StunClass[] = ["request", "indication", "success", "error"];

/** Attribute type codes this codec understands (RFC 8489, RFC 5780, RFC 8445). */
export const ATTRIBUTE_CODES = {
  "MAPPED-ADDRESS": 0x0001,
  "CHANGE-REQUEST": 0x0003,
  "USERNAME": 0x0006,
  "MESSAGE-INTEGRITY": 0x0008,
  "ERROR-CODE": 0x0009,
  "UNKNOWN-ATTRIBUTES": 0x000a,
  "REALM": 0x0014,
  "NONCE": 0x0015,
  "MESSAGE-INTEGRITY-SHA256": 0x001c,
  "XOR-MAPPED-ADDRESS": 0x0020,
  "PRIORITY": 0x0024,
  "USE-CANDIDATE": 0x0025,
  "PADDING": 0x0026,
  "RESPONSE-PORT": 0x0027,
  "SOFTWARE": 0x8022,
  "ALTERNATE-SERVER": 0x8023,
  "FINGERPRINT": 0x8028,
  "ICE-CONTROLLED": 0x8029,
  "ICE-CONTROLLING": 0x802a,
  "RESPONSE-ORIGIN": 0x802b,
  "OTHER-ADDRESS": 0x802c,
} as const;

/** The name of an attribute type this codec understands. */
export type KnownAttributeType = keyof typeof ATTRIBUTE_CODES;

/** Known attribute names by code. */
export const ATTRIBUTE_NAMES: ReadonlyMap<number, KnownAttributeType> = new Map(
  Object.entries(ATTRIBUTE_CODES).map(([name, code]) => [code, name as KnownAttributeType]),
);

/** Whether an attribute type is comprehension-required (0x0000-0x7FFF): unknown ones earn a 420. */
export function isComprehensionRequired(code: number): boolean {
  return code < 0x8000;
}

/** Longest USERNAME value in bytes (RFC 8489 §14.3: "less than 513 bytes"). */
export const MAX_USERNAME_BYTES = 512;
/**
 * Longest REALM, NONCE, SOFTWARE value or ERROR-CODE reason in bytes: fewer than 128
 * characters, which RFC 8489 bounds at 763 bytes when decoding (and asks senders to keep to
 * 509). The codec accepts and writes up to 763, so whatever it decodes it can encode again.
 */
export const MAX_TEXT_BYTES = 763;
