/**
 * lib/stun against RFC 5769's four test vectors: each decodes to exactly the attributes the RFC
 * lists, its MESSAGE-INTEGRITY verifies with the RFC's credential (and not with another), its
 * FINGERPRINT matches, and encoding the decoded attributes with that credential gives back the
 * identical bytes (the RFC's 0x20 padding included).
 */
import assert from "node:assert/strict";
import {
  computeFingerprint,
  type DecodedStunMessage,
  decodeStunMessage,
  encodeStunMessage,
  isStunMessage,
  longTermKey,
  saslprep,
  shortTermKey,
  type StunAttribute,
  StunError,
  verifyMessageIntegrity,
} from "../lib/stun/mod.ts";
import { embed } from "./packet/bytes.ts";
import {
  fromHex,
  LONG_TERM,
  SAMPLE_IPV4_RESPONSE,
  SAMPLE_IPV6_RESPONSE,
  SAMPLE_LONG_TERM_REQUEST,
  SAMPLE_REQUEST,
  SHORT_TERM_PASSWORD,
  TRANSACTION_ID,
} from "./stun/rfc5769.ts";

const SHORT_KEY = shortTermKey(SHORT_TERM_PASSWORD);
const LONG_KEY = longTermKey(LONG_TERM.username, LONG_TERM.realm, LONG_TERM.password);

/** The attributes to encode again: all but the ones the encoder computes. */
function rebuildable(message: DecodedStunMessage): StunAttribute[] {
  return message.attributes.filter((a) =>
    a.type !== "MESSAGE-INTEGRITY" && a.type !== "MESSAGE-INTEGRITY-SHA256" &&
    a.type !== "FINGERPRINT"
  );
}

/** Checks a vector's integrity and fingerprint and that it re-encodes to itself. */
function checkVector(
  bytes: Uint8Array,
  key: Uint8Array,
  options: { fingerprint: boolean; paddingByte: number },
): DecodedStunMessage {
  assert.ok(isStunMessage(bytes));
  const message = decodeStunMessage(bytes);
  assert.ok(verifyMessageIntegrity(message, key), "MESSAGE-INTEGRITY verifies");
  assert.ok(!verifyMessageIntegrity(message, shortTermKey("wrong")), "not with a wrong key");
  assert.equal(message.hasFingerprint, options.fingerprint);
  assert.equal(message.integritySha256, undefined);
  assert.deepEqual(message.unknownRequired, []);
  const again = encodeStunMessage(
    { ...message, attributes: rebuildable(message) },
    { integrityKey: key, fingerprint: options.fingerprint, paddingByte: options.paddingByte },
  );
  assert.deepEqual(again, bytes, "re-encodes to the RFC's bytes");
  // The same bytes at an odd offset of a larger buffer decode the same.
  const embedded = decodeStunMessage(embed(bytes));
  assert.deepEqual(embedded.attributes, message.attributes);
  assert.ok(verifyMessageIntegrity(embedded, key));
  return message;
}

Deno.test("RFC 5769 §2.1 sample request: short-term MESSAGE-INTEGRITY, FINGERPRINT, 0x20 padding", () => {
  const message = checkVector(SAMPLE_REQUEST, SHORT_KEY, { fingerprint: true, paddingByte: 0x20 });
  assert.equal(message.stunClass, "request");
  assert.equal(message.method, 0x001);
  assert.deepEqual(message.transactionId, TRANSACTION_ID);
  assert.deepEqual(message.attributes, [
    { type: "SOFTWARE", value: "STUN test client" },
    { type: "PRIORITY", priority: 0x6e0001ff },
    { type: "ICE-CONTROLLED", tieBreaker: 0x932ff9b151263b36n },
    { type: "USERNAME", value: "evtj:h6vY" },
    {
      type: "MESSAGE-INTEGRITY",
      hmac: fromHex("9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2"),
    },
    { type: "FINGERPRINT", crc: 0xe57a3bcf },
  ]);
  assert.equal(message.integrity?.offset, 20 + 20 + 8 + 12 + 16);
  // The FINGERPRINT is the CRC-32 of everything before it, XOR 0x5354554e.
  assert.equal(computeFingerprint(SAMPLE_REQUEST, SAMPLE_REQUEST.length - 8), 0xe57a3bcf);
});

Deno.test("RFC 5769 §2.2 sample IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853", () => {
  const message = checkVector(SAMPLE_IPV4_RESPONSE, SHORT_KEY, {
    fingerprint: true,
    paddingByte: 0x20,
  });
  assert.equal(message.stunClass, "success");
  assert.equal(message.method, 0x001);
  assert.deepEqual(message.transactionId, TRANSACTION_ID);
  assert.deepEqual(message.attributes, [
    { type: "SOFTWARE", value: "test vector" },
    { type: "XOR-MAPPED-ADDRESS", address: { hostname: "192.0.2.1", port: 32853 } },
    {
      type: "MESSAGE-INTEGRITY",
      hmac: fromHex("2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7"),
    },
    { type: "FINGERPRINT", crc: 0xc07d4c96 },
  ]);
});

Deno.test("RFC 5769 §2.3 sample IPv6 response: XOR with cookie and transaction ID", () => {
  const message = checkVector(SAMPLE_IPV6_RESPONSE, SHORT_KEY, {
    fingerprint: true,
    paddingByte: 0x20,
  });
  assert.equal(message.stunClass, "success");
  assert.deepEqual(message.attributes, [
    { type: "SOFTWARE", value: "test vector" },
    {
      type: "XOR-MAPPED-ADDRESS",
      address: { hostname: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853 },
    },
    {
      type: "MESSAGE-INTEGRITY",
      hmac: fromHex("a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41"),
    },
    { type: "FINGERPRINT", crc: 0xc8fb0b4c },
  ]);
});

Deno.test("RFC 5769 §2.4 long-term request: key MD5(username:realm:SASLprep(password))", () => {
  assert.equal(saslprep(LONG_TERM.password), LONG_TERM.preparedPassword);
  assert.deepEqual(
    LONG_KEY,
    longTermKey(LONG_TERM.username, LONG_TERM.realm, LONG_TERM.preparedPassword),
  );
  const message = checkVector(SAMPLE_LONG_TERM_REQUEST, LONG_KEY, {
    fingerprint: false,
    paddingByte: 0,
  });
  assert.equal(message.stunClass, "request");
  assert.deepEqual(message.transactionId, LONG_TERM.transactionId);
  assert.deepEqual(message.attributes, [
    { type: "USERNAME", value: LONG_TERM.username },
    { type: "NONCE", value: LONG_TERM.nonce },
    { type: "REALM", value: LONG_TERM.realm },
    {
      type: "MESSAGE-INTEGRITY",
      hmac: fromHex("f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66"),
    },
  ]);
  assert.ok(!verifyMessageIntegrity(message, longTermKey("x", LONG_TERM.realm, "TheMatrIX")));
  assert.ok(!verifyMessageIntegrity(message, shortTermKey(LONG_TERM.password)));
});

Deno.test("RFC 5769 vectors: a changed byte fails FINGERPRINT, or MESSAGE-INTEGRITY without one", () => {
  for (const vector of [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE]) {
    for (const at of [8, 19, 25, vector.length - 9]) {
      const changed = vector.slice();
      changed[at] ^= 0x01;
      assert.throws(
        () => decodeStunMessage(changed),
        (e) => e instanceof StunError && e.reason === "bad-fingerprint",
      );
    }
  }
  // Without a FINGERPRINT, the change decodes and MESSAGE-INTEGRITY catches it.
  const changed = SAMPLE_LONG_TERM_REQUEST.slice();
  changed[30] ^= 0x01; // Inside USERNAME: "マ" becomes another valid character.
  const message = decodeStunMessage(changed);
  assert.notDeepEqual(message.attributes[0], { type: "USERNAME", value: LONG_TERM.username });
  assert.ok(!verifyMessageIntegrity(message, LONG_KEY));
});
