/**
 * Address-validation tokens for stateless retry (RFC 9000 §8.1.2): the token
 * binds the client's address and its original destination connection ID to a
 * time, authenticated with HMAC-SHA256 under a key that never leaves the process.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

const VERSION = 1;
const MAC_LENGTH = 16;

/** Mints and checks retry tokens. */
export class RetryTokens {
  readonly #key = crypto.getRandomValues(new Uint8Array(32));
  readonly #lifetimeMs: number;

  /** Tokens are valid for `lifetimeMs` after they are minted. */
  constructor(lifetimeMs = 10_000) {
    this.#lifetimeMs = lifetimeMs;
  }

  #mac(peer: Uint8Array, body: Uint8Array): Uint8Array {
    const digest = createHmac("sha256", this.#key).update(peer).update(body).digest();
    return new Uint8Array(digest.buffer, digest.byteOffset, MAC_LENGTH);
  }

  /** A token for a client at `peer` (sockaddr bytes) whose first Initial was sent to `odcid`. */
  mint(peer: Uint8Array, odcid: Uint8Array, now = Date.now()): Uint8Array {
    const body = new Uint8Array(1 + 8 + 1 + odcid.length);
    const view = new DataView(body.buffer);
    body[0] = VERSION;
    view.setFloat64(1, now);
    body[9] = odcid.length;
    body.set(odcid, 10);
    const token = new Uint8Array(body.length + MAC_LENGTH);
    token.set(body);
    token.set(this.#mac(peer, body), body.length);
    return token;
  }

  /** The original destination connection ID if the token is authentic, fresh and for `peer`; else null. */
  validate(token: Uint8Array, peer: Uint8Array, now = Date.now()): Uint8Array | null {
    if (token.length < 10 + MAC_LENGTH || token[0] !== VERSION) return null;
    const odcidLength = token[9];
    const bodyLength = 10 + odcidLength;
    if (odcidLength > 20 || token.length !== bodyLength + MAC_LENGTH) return null;
    const body = token.subarray(0, bodyLength);
    if (!timingSafeEqual(this.#mac(peer, body), token.subarray(bodyLength))) return null;
    const mintedAt = new DataView(token.buffer, token.byteOffset).getFloat64(1);
    if (!(now >= mintedAt - 1000 && now - mintedAt <= this.#lifetimeMs)) return null;
    return token.slice(10, bodyLength);
  }
}
