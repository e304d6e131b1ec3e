/**
 * lib/quic/retry_token.ts: a retry token gives back the original destination connection ID
 * only to the address it was minted for, in an Initial sent to the connection ID its Retry
 * named, unaltered, within its lifetime, and only to the RetryTokens instance (key) that
 * minted it. Anything else is null, never an exception.
 */
import assert from "node:assert/strict";
import { encodeSockaddr } from "../lib/net/address.ts";
import { DEFAULT_RETRY_TOKEN_LIFETIME_MS, RetryTokens } from "../lib/quic/retry_token.ts";
import { pseudoRandomBytes } from "./support/bytes.ts";

const T0 = 1_700_000_000_000; // a fixed wall-clock time, ms
const PEER = encodeSockaddr({ hostname: "192.0.2.10", port: 50_000 }, 4);
const ODCID = Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
/** The connection ID the Retry told the client to use (its next Initial's DCID). */
const RCID = pseudoRandomBytes(16, 7);

Deno.test("round trip returns the odcid, as a copy", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(PEER, ODCID, RCID, T0);
  // version | f64 time | odcid length | odcid | 16-byte MAC
  assert.equal(token.length, 1 + 8 + 1 + ODCID.length + 16);
  assert.equal(token[0], 2, "format version 2: the Retry's connection ID is bound");
  assert.equal(new DataView(token.buffer).getFloat64(1), T0);
  assert.equal(token[9], ODCID.length);
  assert.deepEqual([...token.subarray(10, 10 + ODCID.length)], [...ODCID]);

  const odcid = tokens.validate(token, PEER, RCID, T0 + 1);
  assert.ok(odcid instanceof Uint8Array);
  assert.deepEqual([...odcid], [...ODCID]);
  // A copy: changing it changes neither the token nor a second validation.
  odcid.fill(0);
  assert.deepEqual([...tokens.validate(token, PEER, RCID, T0 + 2)!], [...ODCID]);
  // Validating twice is allowed (the token is stateless).
  assert.notEqual(tokens.validate(token, PEER, RCID, T0 + 3), null);
});

Deno.test("round trip with the default clock", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(PEER, ODCID, RCID);
  assert.deepEqual([...tokens.validate(token, PEER, RCID)!], [...ODCID]);
});

Deno.test("odcid lengths 0 to 20 round-trip", () => {
  const tokens = new RetryTokens();
  for (let length = 0; length <= 20; length++) {
    const odcid = pseudoRandomBytes(length, 100 + length);
    const token = tokens.mint(PEER, odcid, RCID, T0);
    assert.equal(token.length, 26 + length);
    assert.deepEqual([...tokens.validate(token, PEER, RCID, T0)!], [...odcid], `length ${length}`);
  }
});

Deno.test("tokens and peers inside larger buffers (subarrays at an offset) validate", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(PEER, ODCID, RCID, T0);
  const packet = new Uint8Array(token.length + 50).fill(0x77);
  packet.set(token, 13);
  const peerSlot = new Uint8Array(64).fill(0x11);
  peerSlot.set(PEER, 5);
  const header = new Uint8Array(40).fill(0x22);
  header.set(RCID, 6);
  const odcid = tokens.validate(
    packet.subarray(13, 13 + token.length),
    peerSlot.subarray(5, 5 + PEER.length),
    header.subarray(6, 6 + RCID.length),
    T0,
  );
  assert.deepEqual([...odcid!], [...ODCID]);
});

Deno.test("a different peer address gets null", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(PEER, ODCID, RCID, T0);
  const others = [
    encodeSockaddr({ hostname: "192.0.2.10", port: 50_001 }, 4), // other port
    encodeSockaddr({ hostname: "192.0.2.11", port: 50_000 }, 4), // other host
    encodeSockaddr({ hostname: "192.0.2.10", port: 50_000 }, 6), // same peer, v4-mapped
    encodeSockaddr({ hostname: "2001:db8::1", port: 50_000 }, 6),
    new Uint8Array(0),
  ];
  for (const peer of others) assert.equal(tokens.validate(token, peer, RCID, T0), null);
  // Same for IPv6 peers, differing in one address byte.
  const peer6 = encodeSockaddr({ hostname: "2001:db8::1", port: 443 }, 6);
  const token6 = tokens.mint(peer6, ODCID, RCID, T0);
  assert.deepEqual([...tokens.validate(token6, peer6, RCID, T0)!], [...ODCID]);
  const near = peer6.slice();
  near[23] ^= 1;
  assert.equal(tokens.validate(token6, near, RCID, T0), null);
});

Deno.test("any flipped bit of the token gets null", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(PEER, ODCID, RCID, T0);
  let checked = 0;
  for (let i = 0; i < token.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const tampered = token.slice();
      tampered[i] ^= 1 << bit;
      assert.equal(tokens.validate(tampered, PEER, RCID, T0), null, `byte ${i} bit ${bit}`);
      checked++;
    }
  }
  assert.equal(checked, token.length * 8);
  // The untouched token still validates (validate does not consume or alter it).
  assert.notEqual(tokens.validate(token, PEER, RCID, T0), null);
});

Deno.test("a re-signed odcid or time without the key gets null", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(PEER, ODCID, RCID, T0);
  // Move the time forward to extend the lifetime: the MAC no longer matches.
  const later = token.slice();
  new DataView(later.buffer).setFloat64(1, T0 + 60_000);
  assert.equal(tokens.validate(later, PEER, RCID, T0 + 60_000), null);
  // Swap in another odcid of the same length.
  const swapped = token.slice();
  swapped.set([9, 9, 9, 9, 9, 9, 9, 9], 10);
  assert.equal(tokens.validate(swapped, PEER, RCID, T0), null);
});

Deno.test("lifetime: valid through lifetimeMs after minting, null after; 1 s of clock skew", () => {
  const tokens = new RetryTokens(10_000);
  const token = tokens.mint(PEER, ODCID, RCID, T0);
  assert.notEqual(tokens.validate(token, PEER, RCID, T0), null);
  assert.notEqual(tokens.validate(token, PEER, RCID, T0 + 10_000), null);
  assert.equal(tokens.validate(token, PEER, RCID, T0 + 10_001), null);
  assert.equal(tokens.validate(token, PEER, RCID, T0 + 3_600_000), null);
  // Minted "in the future" by up to one second is tolerated, more is not.
  assert.notEqual(tokens.validate(token, PEER, RCID, T0 - 1_000), null);
  assert.equal(tokens.validate(token, PEER, RCID, T0 - 1_001), null);
  assert.equal(tokens.validate(token, PEER, RCID, NaN), null);

  const short = new RetryTokens(50);
  const t = short.mint(PEER, ODCID, RCID, T0);
  assert.notEqual(short.validate(t, PEER, RCID, T0 + 50), null);
  assert.equal(short.validate(t, PEER, RCID, T0 + 51), null);
  // Default lifetime is 3 s: a client answers a Retry within one round trip.
  assert.equal(DEFAULT_RETRY_TOKEN_LIFETIME_MS, 3_000);
  const defaults = new RetryTokens();
  const d = defaults.mint(PEER, ODCID, RCID, T0);
  assert.notEqual(defaults.validate(d, PEER, RCID, T0 + 3_000), null);
  assert.equal(defaults.validate(d, PEER, RCID, T0 + 3_001), null);
  assert.equal(defaults.validate(d, PEER, RCID, T0 + 10_000), null);
});

Deno.test("a token validates only in an Initial sent to the connection ID its Retry named", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(PEER, ODCID, RCID, T0);
  assert.deepEqual([...tokens.validate(token, PEER, RCID, T0)!], [...ODCID]);
  const others: Uint8Array[] = [
    ODCID, // the client's first DCID
    new Uint8Array(0),
    RCID.subarray(0, 15), // a prefix
    Uint8Array.of(...RCID, 0), // an extension
    pseudoRandomBytes(16, 8), // another retry's ID
  ];
  for (let i = 0; i < RCID.length; i++) {
    const near = RCID.slice();
    near[i] ^= 0x01;
    others.push(near);
  }
  for (const dcid of others) {
    assert.equal(tokens.validate(token, PEER, dcid, T0), null, `dcid ${[...dcid]}`);
  }
  assert.equal(others.length, 21);
  // Two Retries to the same client and first DCID give tokens that do not cross over.
  const second = pseudoRandomBytes(16, 9);
  const token2 = tokens.mint(PEER, ODCID, second, T0);
  assert.notEqual(tokens.validate(token2, PEER, second, T0), null);
  assert.equal(tokens.validate(token2, PEER, RCID, T0), null);
  assert.equal(tokens.validate(token, PEER, second, T0), null);
  // Moving bytes between the address and the ID does not forge a MAC (length-prefixed).
  const shifted = Uint8Array.of(...PEER, RCID[0]);
  assert.equal(tokens.validate(token, shifted, RCID.subarray(1), T0), null);
});

Deno.test("a token from another RetryTokens instance gets null", () => {
  const a = new RetryTokens();
  const b = new RetryTokens();
  const token = a.mint(PEER, ODCID, RCID, T0);
  assert.equal(b.validate(token, PEER, RCID, T0), null);
  assert.notEqual(a.validate(token, PEER, RCID, T0), null);
  assert.equal(a.validate(b.mint(PEER, ODCID, RCID, T0), PEER, RCID, T0), null);
});

Deno.test("truncated, extended and garbage tokens get null, never an exception", () => {
  const tokens = new RetryTokens();
  const token = tokens.mint(PEER, ODCID, RCID, T0);
  for (let length = 0; length < token.length; length++) {
    assert.equal(
      tokens.validate(token.subarray(0, length), PEER, RCID, T0),
      null,
      `first ${length}`,
    );
    assert.equal(tokens.validate(token.subarray(token.length - length), PEER, RCID, T0), null);
  }
  const extended = new Uint8Array(token.length + 1);
  extended.set(token);
  assert.equal(tokens.validate(extended, PEER, RCID, T0), null);

  // A length byte past 20, or pointing past the end, with a well-formed size.
  const bad = token.slice();
  bad[9] = 200;
  assert.equal(tokens.validate(bad, PEER, RCID, T0), null);
  const big = new Uint8Array(10 + 21 + 16);
  big[0] = 2;
  big[9] = 21;
  assert.equal(tokens.validate(big, PEER, RCID, T0), null);
  const other = token.slice();
  other[0] = 1; // the former version, which did not bind the Retry's ID
  assert.equal(tokens.validate(other, PEER, RCID, T0), null);

  let count = 0;
  for (let length = 0; length <= 80; length++) {
    for (let seed = 1; seed <= 40; seed++) {
      const junk = pseudoRandomBytes(length, seed * 1000 + length);
      // Also with a plausible header, so the MAC comparison is reached.
      const shaped = junk.slice();
      if (shaped.length >= 26) {
        shaped[0] = 2;
        shaped[9] = shaped.length - 26;
      }
      for (const candidate of [junk, shaped]) {
        assert.doesNotThrow(() => {
          assert.equal(tokens.validate(candidate, PEER, RCID, T0), null);
          assert.equal(tokens.validate(candidate, new Uint8Array(0), RCID, T0), null);
          assert.equal(tokens.validate(candidate, PEER, new Uint8Array(0), T0), null);
        });
        count++;
      }
    }
  }
  assert.equal(count, 81 * 40 * 2);
});
