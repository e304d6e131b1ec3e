/**
 * Address-validation tokens for stateless retry (RFC 9000 §8.1.2): the token
 * carries the client's original destination connection ID and a time, and its
 * HMAC-SHA256 (under a key that never leaves the process) also covers the
 * client's address and the connection ID the Retry told it to use next. A token
 * is therefore good for one connection only: an Initial that carries it to any
 * other destination ID, or from any other address, fails validation. Replaying
 * it with that same ID reaches the connection it already made (the endpoint
 * routes by destination ID), so at most one live connection exists per token.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Token format version; 2 binds the Retry's connection ID. */
const VERSION = 2;
const MAC_LENGTH = 16;
/** version | f64 mint time | odcid length. */
const HEADER_LENGTH = 10;
/** Tolerated clock step backwards between minting and validating, ms. */
const CLOCK_SKEW_MS = 1_000;

/**
 * Default token lifetime: a client answers a Retry within one round trip, and
 * retransmits an unanswered Initial about 1 s and 3 s later (quiche's first PTOs).
 */
export const DEFAULT_RETRY_TOKEN_LIFETIME_MS = 3_000;

/** Mints and checks retry tokens. */
export class RetryTokens {
  readonly #key = crypto.getRandomValues(new Uint8Array(32));
  readonly #lifetimeMs: number;

  /** Tokens are valid for `lifetimeMs` after they are minted. */
  constructor(lifetimeMs = DEFAULT_RETRY_TOKEN_LIFETIME_MS) {
    this.#lifetimeMs = lifetimeMs;
  }

  #mac(peer: Uint8Array, retryCid: Uint8Array, body: Uint8Array): Uint8Array {
    // Length-prefixed, so no two (peer, cid) pairs feed the MAC the same bytes.
    const digest = createHmac("sha256", this.#key)
      .update(Uint8Array.of(peer.length)).update(peer)
      .update(Uint8Array.of(retryCid.length)).update(retryCid)
      .update(body).digest();
    return new Uint8Array(digest.buffer, digest.byteOffset, MAC_LENGTH);
  }

  /**
   * A token for a client at `peer` (sockaddr bytes) whose first Initial was sent
   * to `odcid`, and whose next Initial must be sent to `retryCid` (the source
   * connection ID of the Retry that carries the token).
   */
  mint(peer: Uint8Array, odcid: Uint8Array, retryCid: Uint8Array, now = Date.now()): Uint8Array {
    const body = new Uint8Array(HEADER_LENGTH + odcid.length);
    body[0] = VERSION;
    new DataView(body.buffer).setFloat64(1, now);
    body[9] = odcid.length;
    body.set(odcid, HEADER_LENGTH);
    const token = new Uint8Array(body.length + MAC_LENGTH);
    token.set(body);
    token.set(this.#mac(peer, retryCid, body), body.length);
    return token;
  }

  /**
   * The original destination connection ID if the token is authentic, fresh, for
   * `peer`, and carried by an Initial sent to `dcid` (the ID it was minted for);
   * else null.
   */
  validate(
    token: Uint8Array,
    peer: Uint8Array,
    dcid: Uint8Array,
    now = Date.now(),
  ): Uint8Array | null {
    if (token.length < HEADER_LENGTH + MAC_LENGTH || token[0] !== VERSION) return null;
    const odcidLength = token[9];
    const bodyLength = HEADER_LENGTH + odcidLength;
    if (odcidLength > 20 || token.length !== bodyLength + MAC_LENGTH) return null;
    const body = token.subarray(0, bodyLength);
    if (!timingSafeEqual(this.#mac(peer, dcid, body), token.subarray(bodyLength))) return null;
    const mintedAt = new DataView(token.buffer, token.byteOffset).getFloat64(1);
    if (!(now >= mintedAt - CLOCK_SKEW_MS && now - mintedAt <= this.#lifetimeMs)) return null;
    return token.slice(HEADER_LENGTH, bodyLength);
  }
}
