/** The one error STUN decoding throws: malformed input is normal, so callers can count it by reason. */

/** Every reason a STUN message (or a credential) is refused. */
export const STUN_ERROR_REASONS = [
  /** Fewer than the 20 bytes of a STUN header. */
  "truncated",
  /** One of the first two bits is set: not STUN (QUIC, for one, sets bit 0x40 or 0x80). */
  "not-stun",
  /** Bytes 4..8 are not the magic cookie 0x2112A442 (an RFC 3489 message, or not STUN). */
  "bad-magic-cookie",
  /** The length field is not a multiple of 4, or not the number of bytes after the header. */
  "bad-length",
  /** An attribute's value runs past the end of the message. */
  "attribute-overflow",
  /** More attributes than the decoder's cap. */
  "too-many-attributes",
  /** An attribute's length is not one its type allows. */
  "bad-attribute-length",
  /** An address attribute's family is neither 0x01 (IPv4) nor 0x02 (IPv6). */
  "bad-address-family",
  /** An ERROR-CODE whose class is not 3-6 or whose number is above 99. */
  "bad-error-code",
  /** A text attribute that is not valid UTF-8. */
  "bad-utf8",
  /** A text attribute longer than its type allows. */
  "value-too-long",
  /** A FINGERPRINT that does not match the message. */
  "bad-fingerprint",
  /** An attribute after FINGERPRINT, which must be last. */
  "attribute-after-fingerprint",
  /** A password or other credential with a character SASLprep prohibits. */
  "bad-credential",
] as const;

/** Why a message was refused. */
export type StunErrorReason = typeof STUN_ERROR_REASONS[number];

/** A malformed STUN message (or an unusable credential); `reason` says which rule it broke. */
export class StunError extends Error {
  /** The rule broken. */
  readonly reason: StunErrorReason;

  constructor(reason: StunErrorReason, detail: string) {
    super(`${reason}: ${detail}`);
    this.name = "StunError";
    this.reason = reason;
  }
}
