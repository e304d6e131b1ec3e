/**
 * 100,000 random and mutated datagrams through lib/stun's decoder: each decodes to a message
 * or throws a StunError with a listed reason, never anything else; a decoded message is one
 * isStunMessage accepts, within the attribute cap, and encodes back to a message that decodes
 * to the same attributes; and the whole run stays within a time bound. Deterministic: set
 * STUN_FUZZ_SEED to explore other inputs.
 */
import assert from "node:assert/strict";
import { writeU16 } from "../lib/packet/bytes.ts";
import {
  ATTRIBUTE_CODES,
  computeFingerprint,
  type DecodedStunMessage,
  decodeStunMessage,
  encodeStunMessage,
  isStunMessage,
  MAX_STUN_ATTRIBUTES,
  shortTermKey,
  STUN_ERROR_REASONS,
  type StunAttribute,
  StunError,
  type StunErrorReason,
} from "../lib/stun/mod.ts";
import { prng } from "./packet/bytes.ts";
import { VECTORS } from "./stun/rfc5769.ts";

const MESSAGES = 100_000;
const SEED = Number(Deno.env.get("STUN_FUZZ_SEED") ?? 20240917);
/** Generous: the run takes about a second here; this catches a quadratic slide. */
const TIME_BOUND_MS = 20_000;

const TID = new Uint8Array(12).fill(0x5a);
const KEY = shortTermKey("fuzz");

/** Valid messages to mutate: RFC 5769's and ones with every attribute this codec knows. */
function seeds(): Uint8Array[] {
  const all: StunAttribute[] = [
    { type: "XOR-MAPPED-ADDRESS", address: { hostname: "198.18.10.2", port: 40000 } },
    { type: "XOR-MAPPED-ADDRESS", address: { hostname: "2001:db8::42", port: 1 } },
    { type: "MAPPED-ADDRESS", address: { hostname: "198.18.10.2", port: 40000 } },
    { type: "RESPONSE-ORIGIN", address: { hostname: "198.18.1.2", port: 3478 } },
    { type: "OTHER-ADDRESS", address: { hostname: "198.18.1.3", port: 3479 } },
    { type: "CHANGE-REQUEST", changeIp: true, changePort: true },
    { type: "RESPONSE-PORT", port: 5000 },
    { type: "PADDING", length: 7 },
    { type: "SOFTWARE", value: "ztna" },
    { type: "USERNAME", value: "user:peer" },
    { type: "REALM", value: "realm" },
    { type: "NONCE", value: "nonce" },
    { type: "ERROR-CODE", code: 420, reason: "Unknown Attribute" },
    { type: "UNKNOWN-ATTRIBUTES", types: [3, 0x7fff] },
    { type: "PRIORITY", priority: 1 },
    { type: "USE-CANDIDATE" },
    { type: "ICE-CONTROLLING", tieBreaker: 1n },
    { type: "unknown", code: 0x7abc, value: new Uint8Array([1, 2, 3]) },
  ];
  const message = (attributes: StunAttribute[]) => ({
    stunClass: "success" as const,
    method: 1,
    transactionId: TID,
    attributes,
  });
  return [
    ...VECTORS.map(([, bytes]) => bytes),
    encodeStunMessage(message(all), {
      integrityKey: KEY,
      integritySha256Key: KEY,
      fingerprint: true,
    }),
    encodeStunMessage(message(all.slice(0, 6)), { fingerprint: true }),
    encodeStunMessage(message(all.slice(6, 12))),
    encodeStunMessage(message(all.slice(12)), { integrityKey: KEY }),
    encodeStunMessage(message([])),
  ];
}

const CODES = [...Object.values(ATTRIBUTE_CODES), 0x0002, 0x7fff, 0x8000, 0xffff];
const LENGTHS = [0, 1, 2, 3, 4, 8, 12, 16, 19, 20, 24, 32, 36, 513, 764];

/** Sets a valid header (with its length field) on `bytes`, optionally with a FINGERPRINT. */
function reseal(bytes: Uint8Array, random: (n: number) => number): Uint8Array {
  bytes[0] &= 0x3f;
  writeU16(bytes, 2, bytes.length - 20);
  bytes.set([0x21, 0x12, 0xa4, 0x42], 4);
  if (random(4) === 0 && bytes.length >= 28) {
    const at = bytes.length - 8;
    bytes.set([0x80, 0x28, 0, 4], at);
    const crc = computeFingerprint(bytes, at);
    bytes.set([crc >>> 24, (crc >>> 16) & 255, (crc >>> 8) & 255, crc & 255], at + 4);
  }
  return bytes;
}

/** A message body of random attributes, with plausible codes and lengths. */
function randomAttributes(random: (n: number) => number): Uint8Array {
  const parts: number[] = [];
  const count = random(8);
  for (let i = 0; i < count; i++) {
    const code = random(4) === 0 ? random(0x10000) : CODES[random(CODES.length)];
    const length = random(3) === 0 ? random(40) : LENGTHS[random(LENGTHS.length)];
    parts.push(code >> 8, code & 255, length >> 8, length & 255);
    const value = Array.from(
      { length },
      () => random(5) === 0 ? random(256) : [0, 1, 2, 0x20, 0x61][random(5)],
    );
    if (
      code === ATTRIBUTE_CODES["XOR-MAPPED-ADDRESS"] || code === ATTRIBUTE_CODES["MAPPED-ADDRESS"]
    ) {
      if (length >= 2) value[1] = random(3);
    }
    parts.push(...value);
    for (let p = length; p % 4 !== 0; p++) parts.push(random(256));
  }
  const out = new Uint8Array(20 + parts.length + 8);
  out.set(parts, 20);
  return out;
}

/** One fuzz input. */
function input(random: (n: number) => number, pool: Uint8Array[]): Uint8Array {
  const pick = () => pool[random(pool.length)];
  switch (random(7)) {
    case 0: // Random bytes.
      return Uint8Array.from({ length: random(120) }, () => random(256));
    case 1: { // Random bytes behind a valid header.
      const bytes = Uint8Array.from({ length: 20 + 4 * random(30) }, () => random(256));
      return reseal(bytes, random);
    }
    case 2: // Random attributes behind a valid header.
      return reseal(randomAttributes(random), random);
    case 3: { // A valid message with a few bytes changed.
      const bytes = pick().slice();
      for (let n = 1 + random(4); n > 0; n--) bytes[random(bytes.length)] = random(256);
      return bytes;
    }
    case 4: { // Changed, then resealed so the header and FINGERPRINT are not what refuses it.
      const bytes = pick().slice();
      for (let n = 1 + random(3); n > 0; n--) {
        bytes[20 + random(bytes.length - 20 || 1)] ^= 1 << random(8);
      }
      return reseal(bytes.length >= 20 ? bytes : new Uint8Array(20), random);
    }
    case 5: { // Cut short or run long, the length field fixed or not.
      const source = pick();
      const length = Math.max(0, source.length + random(17) - 12);
      const bytes = new Uint8Array(length);
      bytes.set(source.subarray(0, length));
      return random(2) === 0 && length >= 20 ? reseal(bytes, random) : bytes;
    }
    default: { // An attribute length field rewritten.
      const bytes = pick().slice();
      if (bytes.length > 24) {
        let at = 20;
        for (let hops = random(4); hops > 0 && at + 4 <= bytes.length; hops--) {
          at += 4 + ((((bytes[at + 2] << 8) | bytes[at + 3]) + 3) & ~3);
        }
        if (at + 4 <= bytes.length) {
          writeU16(bytes, at + 2, LENGTHS[random(LENGTHS.length)] + random(3));
        }
      }
      return bytes;
    }
  }
}

/** Checks a decoded message and that it survives encoding again. */
function checkDecoded(bytes: Uint8Array, message: DecodedStunMessage): void {
  assert.ok(isStunMessage(bytes), "a decoded message passes isStunMessage");
  assert.equal(message.bytes, bytes);
  assert.ok(message.attributes.length <= MAX_STUN_ATTRIBUTES);
  assert.equal(message.transactionId.length, 12);
  const plain = message.attributes.filter((a) =>
    a.type !== "MESSAGE-INTEGRITY" && a.type !== "MESSAGE-INTEGRITY-SHA256" &&
    a.type !== "FINGERPRINT"
  );
  const again = decodeStunMessage(
    encodeStunMessage({ ...message, attributes: plain }, { fingerprint: true }),
  );
  assert.equal(again.stunClass, message.stunClass);
  assert.equal(again.method, message.method);
  assert.deepEqual(again.transactionId, message.transactionId);
  assert.deepEqual(again.attributes.slice(0, -1), plain);
  assert.deepEqual(again.unknownRequired, message.unknownRequired);
}

Deno.test(`${MESSAGES} random and mutated datagrams: a message or a StunError, in bounded time`, () => {
  const random = prng(SEED);
  const pool = seeds();
  const reasons = new Map<StunErrorReason, number>();
  let decoded = 0;
  const started = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    const bytes = input(random, pool);
    let message: DecodedStunMessage;
    try {
      message = decodeStunMessage(bytes);
    } catch (error) {
      if (!(error instanceof StunError)) {
        throw new Error(
          `input ${i} threw ${error}: ${
            Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
          }`,
        );
      }
      assert.ok(STUN_ERROR_REASONS.includes(error.reason), error.reason);
      reasons.set(error.reason, (reasons.get(error.reason) ?? 0) + 1);
      continue;
    }
    decoded++;
    checkDecoded(bytes, message);
    // Decoded messages join the pool, so mutations reach deeper.
    if (pool.length < 400 && random(8) === 0) pool.push(bytes);
  }
  const elapsed = performance.now() - started;
  assert.ok(elapsed < TIME_BOUND_MS, `took ${elapsed} ms`);
  // The inputs reached past the header: most reasons came up, and many messages decoded.
  assert.ok(decoded > MESSAGES / 20, `only ${decoded} decoded`);
  for (const reason of STUN_ERROR_REASONS) {
    if (reason === "bad-credential" || reason === "too-many-attributes") continue;
    assert.ok(reasons.has(reason), `no input was refused for ${reason}: ${[...reasons.keys()]}`);
  }
});
