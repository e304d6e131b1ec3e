/**
 * lib/stun's codec beyond the RFC vectors: the message type's bit layout, the STUN/QUIC test,
 * every attribute through encode and decode, each way a message is refused (with its reason),
 * the ordering rules around MESSAGE-INTEGRITY and FINGERPRINT, comprehension-required unknown
 * attributes, MESSAGE-INTEGRITY-SHA256, SASLprep, encoder misuse, and bounded decoding work.
 */
import assert from "node:assert/strict";
import {
  bindingRequest,
  computeIntegrity,
  crc32,
  decodeStunMessage,
  encodeStunMessage,
  getAttribute,
  isStunMessage,
  mappedAddressOf,
  MAX_STUN_ATTRIBUTES,
  messageType,
  saslprep,
  shortTermKey,
  splitMessageType,
  type StunAttribute,
  type StunClass,
  StunError,
  type StunErrorReason,
  type StunMessage,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from "../lib/stun/mod.ts";
import { bytesOf, rawMessage } from "./stun/build.ts";
import { fromHex, SAMPLE_IPV4_RESPONSE, SAMPLE_REQUEST } from "./stun/rfc5769.ts";

const TID = fromHex("00 11 22 33 44 55 66 77 88 99 aa bb");
const KEY = shortTermKey("secret");

function message(attributes: StunAttribute[], stunClass: StunClass = "success"): StunMessage {
  return { stunClass, method: 0x001, transactionId: TID, attributes };
}

function refuses(bytes: Uint8Array, reason: StunErrorReason): void {
  assert.throws(
    () => decodeStunMessage(bytes),
    (e) => {
      assert.ok(e instanceof StunError, `a StunError, not ${e}`);
      assert.equal(e.reason, reason, e.message);
      return true;
    },
  );
}

Deno.test("message type: class bits C1 at 0x100 and C0 at 0x010, method around them", () => {
  assert.equal(messageType("request", 0x001), 0x0001);
  assert.equal(messageType("indication", 0x001), 0x0011);
  assert.equal(messageType("success", 0x001), 0x0101);
  assert.equal(messageType("error", 0x001), 0x0111);
  assert.equal(messageType("request", 0xfff), 0x3eef);
  for (const stunClass of ["request", "indication", "success", "error"] as const) {
    for (let method = 0; method <= 0xfff; method++) {
      const type = messageType(stunClass, method);
      assert.ok(type < 0x4000);
      assert.deepEqual(splitMessageType(type), { stunClass, method });
    }
  }
});

Deno.test("isStunMessage: STUN's first bits are 00, QUIC's are not; cookie and length must fit", () => {
  assert.ok(isStunMessage(SAMPLE_REQUEST));
  assert.ok(isStunMessage(encodeStunMessage(message([]))));
  const quicShort = SAMPLE_REQUEST.slice();
  quicShort[0] = 0x40; // QUIC fixed bit.
  assert.ok(!isStunMessage(quicShort));
  const quicLong = SAMPLE_REQUEST.slice();
  quicLong[0] = 0xc0;
  assert.ok(!isStunMessage(quicLong));
  const badCookie = SAMPLE_REQUEST.slice();
  badCookie[7] ^= 1;
  assert.ok(!isStunMessage(badCookie));
  assert.ok(!isStunMessage(SAMPLE_REQUEST.subarray(0, 19)));
  assert.ok(!isStunMessage(SAMPLE_REQUEST.subarray(0, SAMPLE_REQUEST.length - 4)));
  const unaligned = new Uint8Array(22);
  unaligned.set(SAMPLE_REQUEST.subarray(0, 20));
  unaligned[2] = 0;
  unaligned[3] = 2;
  assert.ok(!isStunMessage(unaligned));
});

Deno.test("every attribute type survives encode and decode", () => {
  const attributes: StunAttribute[] = [
    { type: "MAPPED-ADDRESS", address: { hostname: "192.0.2.1", port: 1 } },
    { type: "XOR-MAPPED-ADDRESS", address: { hostname: "203.0.113.200", port: 65535 } },
    { type: "XOR-MAPPED-ADDRESS", address: { hostname: "2001:db8::1", port: 0 } },
    { type: "RESPONSE-ORIGIN", address: { hostname: "198.18.1.2", port: 3478 } },
    { type: "OTHER-ADDRESS", address: { hostname: "fd00::3", port: 3479 } },
    { type: "ALTERNATE-SERVER", address: { hostname: "198.51.100.9", port: 3478 } },
    { type: "CHANGE-REQUEST", changeIp: true, changePort: false },
    { type: "CHANGE-REQUEST", changeIp: false, changePort: true },
    { type: "RESPONSE-PORT", port: 40000 },
    { type: "PADDING", length: 5 },
    { type: "SOFTWARE", value: "ztna ünïcode ✓" },
    { type: "USERNAME", value: "a:b" },
    { type: "REALM", value: "example.org" },
    { type: "NONCE", value: "n" },
    { type: "ERROR-CODE", code: 420, reason: "Unknown Attribute" },
    { type: "UNKNOWN-ATTRIBUTES", types: [0x0003, 0x7fff, 0x0002] },
    { type: "PRIORITY", priority: 0xffffffff },
    { type: "USE-CANDIDATE" },
    { type: "ICE-CONTROLLING", tieBreaker: 0xffffffffffffffffn },
    { type: "unknown", code: 0x8fff, value: fromHex("01 02 03") },
  ];
  for (const stunClass of ["request", "indication", "success", "error"] as const) {
    const bytes = encodeStunMessage(message(attributes, stunClass), { fingerprint: true });
    const decoded = decodeStunMessage(bytes);
    assert.equal(decoded.stunClass, stunClass);
    assert.deepEqual(decoded.transactionId, TID);
    assert.deepEqual(decoded.attributes.slice(0, -1), attributes);
    assert.deepEqual(decoded.unknownRequired, []);
    assert.ok(decoded.hasFingerprint);
  }
});

Deno.test("address attributes: exact bytes, v4-mapped IPv6 as dotted IPv4, IPv6 in RFC 5952 form", () => {
  const bytes = encodeStunMessage({
    stunClass: "success",
    method: 1,
    transactionId: SAMPLE_IPV4_RESPONSE.slice(8, 20),
    attributes: [{ type: "XOR-MAPPED-ADDRESS", address: { hostname: "192.0.2.1", port: 32853 } }],
  });
  assert.deepEqual(bytes.subarray(20), fromHex("00 20 00 08 00 01 a1 47 e1 12 a6 43"));
  const mapped = encodeStunMessage(message([
    { type: "MAPPED-ADDRESS", address: { hostname: "::ffff:10.1.2.3", port: 9 } },
    { type: "OTHER-ADDRESS", address: { hostname: "2001:0db8:0:0:0:0:0:0001", port: 9 } },
  ]));
  assert.deepEqual(decodeStunMessage(mapped).attributes, [
    { type: "MAPPED-ADDRESS", address: { hostname: "10.1.2.3", port: 9 } },
    { type: "OTHER-ADDRESS", address: { hostname: "2001:db8::1", port: 9 } },
  ]);
  // A family-2 v4-mapped address on the wire also comes back dotted.
  const v4mapped = rawMessage([[
    0x0001,
    fromHex("00 02 00 09 00000000 00000000 0000ffff 0a010203"),
  ]]);
  assert.deepEqual(decodeStunMessage(v4mapped).attributes, [
    { type: "MAPPED-ADDRESS", address: { hostname: "10.1.2.3", port: 9 } },
  ]);
  // The reserved first byte is ignored.
  const reserved = rawMessage([[0x0001, fromHex("ff 01 00 09 01020304")]]);
  assert.deepEqual(mappedAddressOf(decodeStunMessage(reserved)), { hostname: "1.2.3.4", port: 9 });
});

Deno.test("CHANGE-REQUEST: change IP is 0x04, change port 0x02; other bits ignored", () => {
  const request = encodeStunMessage(bindingRequest({
    transactionId: TID,
    changeIp: true,
    changePort: true,
  }));
  assert.deepEqual(request.subarray(20), fromHex("00 03 00 04 00 00 00 06"));
  assert.deepEqual(
    encodeStunMessage(bindingRequest({ transactionId: TID, changePort: true })).subarray(20),
    fromHex("00 03 00 04 00 00 00 02"),
  );
  assert.equal(encodeStunMessage(bindingRequest({ transactionId: TID })).length, 20);
  const noisy = rawMessage([[0x0003, fromHex("ff ff ff f9")]]);
  assert.deepEqual(decodeStunMessage(noisy).attributes, [
    { type: "CHANGE-REQUEST", changeIp: false, changePort: false },
  ]);
});

Deno.test("mappedAddressOf and getAttribute: XOR-MAPPED-ADDRESS first, first occurrence wins", () => {
  const decoded = decodeStunMessage(encodeStunMessage(message([
    { type: "MAPPED-ADDRESS", address: { hostname: "10.0.0.1", port: 1 } },
    { type: "XOR-MAPPED-ADDRESS", address: { hostname: "10.0.0.2", port: 2 } },
    { type: "XOR-MAPPED-ADDRESS", address: { hostname: "10.0.0.3", port: 3 } },
  ])));
  assert.deepEqual(mappedAddressOf(decoded), { hostname: "10.0.0.2", port: 2 });
  assert.equal(getAttribute(decoded, "SOFTWARE"), undefined);
  assert.equal(getAttribute(decoded, "XOR-MAPPED-ADDRESS")?.address.port, 2);
  const legacy = decodeStunMessage(encodeStunMessage(message([
    { type: "MAPPED-ADDRESS", address: { hostname: "10.0.0.1", port: 1 } },
  ])));
  assert.deepEqual(mappedAddressOf(legacy), { hostname: "10.0.0.1", port: 1 });
});

Deno.test("header refusals: truncated, not STUN, bad cookie, bad length", () => {
  refuses(new Uint8Array(0), "truncated");
  refuses(SAMPLE_REQUEST.subarray(0, 19), "truncated");
  for (const first of [0x40, 0x80, 0xc0]) {
    const quic = SAMPLE_REQUEST.slice();
    quic[0] = first;
    refuses(quic, "not-stun");
  }
  const cookie = SAMPLE_REQUEST.slice();
  cookie[4] = 0;
  refuses(cookie, "bad-magic-cookie");
  refuses(SAMPLE_REQUEST.subarray(0, SAMPLE_REQUEST.length - 4), "bad-length");
  const extra = new Uint8Array(SAMPLE_REQUEST.length + 4);
  extra.set(SAMPLE_REQUEST);
  refuses(extra, "bad-length");
  const odd = rawMessage([[0x8022, bytesOf(2)]]);
  refuses(odd.subarray(0, 26), "bad-length");
  const unaligned = new Uint8Array(22);
  unaligned.set(rawMessage([]).subarray(0, 20));
  unaligned[3] = 2;
  refuses(unaligned, "bad-length");
});

Deno.test("attribute refusals, each with its reason", () => {
  const cases: Array<[StunErrorReason, Uint8Array]> = [
    [
      "attribute-overflow",
      (() => {
        const m = rawMessage([[0x8022, bytesOf(4)]]);
        m[23] = 5; // SOFTWARE claims 5 bytes; 4 are left.
        return m;
      })(),
    ],
    [
      "attribute-overflow",
      (() => {
        const m = rawMessage([[0x8022, bytesOf(8)], [0x8022, bytesOf(0)]]);
        m[23] = 0xff;
        return m;
      })(),
    ],
    [
      "too-many-attributes",
      rawMessage(
        Array.from({ length: MAX_STUN_ATTRIBUTES + 1 }, () => [0x8fff, bytesOf(0)] as const),
      ),
    ],
    ["bad-attribute-length", rawMessage([[0x0008, bytesOf(19)]])],
    ["bad-attribute-length", rawMessage([[0x0008, bytesOf(32)]])],
    ["bad-attribute-length", rawMessage([[0x001c, bytesOf(12)]])],
    ["bad-attribute-length", rawMessage([[0x001c, bytesOf(18)]])],
    ["bad-attribute-length", rawMessage([[0x001c, bytesOf(36)]])],
    ["bad-attribute-length", rawMessage([[0x8028, bytesOf(8)]])],
    ["bad-attribute-length", rawMessage([[0x0003, bytesOf(8)]])],
    ["bad-attribute-length", rawMessage([[0x0027, bytesOf(2)]])],
    ["bad-attribute-length", rawMessage([[0x0024, bytesOf(8)]])],
    ["bad-attribute-length", rawMessage([[0x0025, bytesOf(4)]])],
    ["bad-attribute-length", rawMessage([[0x8029, bytesOf(4)]])],
    ["bad-attribute-length", rawMessage([[0x000a, bytesOf(3)]])],
    ["bad-attribute-length", rawMessage([[0x0009, bytesOf(3)]])],
    ["bad-attribute-length", rawMessage([[0x0020, bytesOf(2)]])],
    [
      "bad-attribute-length",
      rawMessage([[0x0020, fromHex("00 01 00 00 01 02 03 04 05 06 07 08")]]),
    ],
    ["bad-attribute-length", rawMessage([[0x0001, fromHex("00 02 00 00 01 02 03 04")]])],
    ["bad-address-family", rawMessage([[0x0001, fromHex("00 03 00 00 01 02 03 04")]])],
    ["bad-address-family", rawMessage([[0x802c, fromHex("00 00 00 00 01 02 03 04")]])],
    ["bad-error-code", rawMessage([[0x0009, fromHex("00 00 02 00")]])],
    ["bad-error-code", rawMessage([[0x0009, fromHex("00 00 07 00")]])],
    ["bad-error-code", rawMessage([[0x0009, fromHex("00 00 04 64")]])],
    ["bad-utf8", rawMessage([[0x8022, fromHex("61 ff 62")]])],
    ["bad-utf8", rawMessage([[0x0006, fromHex("ed a0 80")]])], // An encoded surrogate.
    ["bad-utf8", rawMessage([[0x0009, fromHex("00 00 04 14 c3")]])],
    ["value-too-long", rawMessage([[0x0006, bytesOf(513, 0x61)]])],
    ["value-too-long", rawMessage([[0x0014, bytesOf(764, 0x61)]])],
    ["value-too-long", rawMessage([[0x8022, bytesOf(764, 0x61)]])],
    [
      "bad-fingerprint",
      (() => {
        const m = rawMessage([[0x8022, bytesOf(4, 0x61)]], { fingerprint: true });
        m[m.length - 1] ^= 1;
        return m;
      })(),
    ],
    [
      "attribute-after-fingerprint",
      (() => {
        const withFingerprint = rawMessage([], { fingerprint: true });
        return rawMessage([[0x8028, withFingerprint.subarray(24, 28)], [0x8022, bytesOf(0)]]);
      })(),
    ],
  ];
  for (const [reason, bytes] of cases) refuses(bytes, reason);
  // Just inside the limits is fine.
  decodeStunMessage(rawMessage([[0x0006, bytesOf(512, 0x61)]]));
  decodeStunMessage(rawMessage([[0x8022, bytesOf(763, 0x61)]]));
  decodeStunMessage(
    rawMessage(Array.from({ length: MAX_STUN_ATTRIBUTES }, () => [0x8fff, bytesOf(0)] as const)),
  );
  decodeStunMessage(rawMessage([[0x0009, fromHex("00 00 06 63")]]));
});

Deno.test("padding: any byte value is accepted (RFC 8489 §14); the length field excludes it", () => {
  const m = rawMessage([[0x8022, fromHex("61")], [0x0006, fromHex("62 63")]]);
  m.fill(0xff, 25, 28);
  m.fill(0x20, 34, 36);
  assert.deepEqual(decodeStunMessage(m).attributes, [
    { type: "SOFTWARE", value: "a" },
    { type: "USERNAME", value: "bc" },
  ]);
  const encoded = encodeStunMessage(message([{ type: "SOFTWARE", value: "abcde" }]), {
    paddingByte: 0x20,
  });
  assert.deepEqual(encoded.subarray(20), fromHex("80 22 00 05 61 62 63 64 65 20 20 20"));
});

Deno.test("unknown attributes: optional ones kept, required ones reported once each for a 420", () => {
  const decoded = decodeStunMessage(rawMessage([
    [0x7fff, fromHex("01")],
    [0xc001, fromHex("02 03")],
    [0x0002, bytesOf(0)],
    [0x7fff, bytesOf(4)],
  ]));
  assert.deepEqual(decoded.unknownRequired, [0x7fff, 0x0002]);
  assert.deepEqual(decoded.attributes, [
    { type: "unknown", code: 0x7fff, value: fromHex("01") },
    { type: "unknown", code: 0xc001, value: fromHex("02 03") },
    { type: "unknown", code: 0x0002, value: new Uint8Array(0) },
    { type: "unknown", code: 0x7fff, value: bytesOf(4) },
  ]);
  // The 420 a server builds from it.
  const answer = decodeStunMessage(encodeStunMessage(
    message([
      { type: "ERROR-CODE", code: 420, reason: "Unknown Attribute" },
      { type: "UNKNOWN-ATTRIBUTES", types: decoded.unknownRequired },
    ], "error"),
    { fingerprint: true },
  ));
  assert.equal(answer.stunClass, "error");
  assert.deepEqual(getAttribute(answer, "UNKNOWN-ATTRIBUTES")?.types, [0x7fff, 0x0002]);
});

Deno.test("MESSAGE-INTEGRITY: attributes after it are dropped except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT", () => {
  const signed = encodeStunMessage(message([{ type: "USERNAME", value: "u" }]), {
    integrityKey: KEY,
  });
  // Append SOFTWARE and an unknown comprehension-required attribute after MESSAGE-INTEGRITY.
  const tail = fromHex("80 22 00 01 61 00 00 00 7f 00 00 00");
  const extended = new Uint8Array(signed.length + tail.length);
  extended.set(signed);
  extended.set(tail, signed.length);
  extended[3] += tail.length;
  const decoded = decodeStunMessage(extended);
  assert.deepEqual(decoded.attributes.map((a) => a.type), ["USERNAME", "MESSAGE-INTEGRITY"]);
  assert.deepEqual(decoded.unknownRequired, []);
  assert.ok(verifyMessageIntegrity(decoded, KEY));
  // A malformed attribute after it is not looked at, but must still fit.
  const badTail = extended.slice();
  badTail[signed.length + 3] = 9;
  refuses(badTail, "attribute-overflow");
});

Deno.test("MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT together", () => {
  const sha256Key = shortTermKey("other");
  const bytes = encodeStunMessage(message([{ type: "SOFTWARE", value: "x" }]), {
    integrityKey: KEY,
    integritySha256Key: sha256Key,
    fingerprint: true,
  });
  const decoded = decodeStunMessage(bytes);
  assert.deepEqual(decoded.attributes.map((a) => a.type), [
    "SOFTWARE",
    "MESSAGE-INTEGRITY",
    "MESSAGE-INTEGRITY-SHA256",
    "FINGERPRINT",
  ]);
  assert.equal(decoded.integritySha256?.hmac.length, 32);
  assert.ok(verifyMessageIntegrity(decoded, KEY));
  assert.ok(verifyMessageIntegritySha256(decoded, sha256Key));
  assert.ok(!verifyMessageIntegritySha256(decoded, KEY));
  // No MESSAGE-INTEGRITY at all: nothing verifies.
  const plain = decodeStunMessage(encodeStunMessage(message([])));
  assert.ok(!verifyMessageIntegrity(plain, KEY));
  assert.ok(!verifyMessageIntegritySha256(plain, KEY));
});

Deno.test("MESSAGE-INTEGRITY-SHA256 truncated to 16 bytes verifies over its length", () => {
  const base = rawMessage([[0x8022, fromHex("61")]]);
  const out = new Uint8Array(base.length + 20);
  out.set(base);
  out[3] = out.length - 20;
  out.set(fromHex("00 1c 00 10"), base.length);
  out.set(computeIntegrity(out, base.length, KEY, "sha256", 16), base.length + 4);
  const decoded = decodeStunMessage(out);
  assert.equal(decoded.integritySha256?.hmac.length, 16);
  assert.ok(verifyMessageIntegritySha256(decoded, KEY));
  out[base.length + 4] ^= 1;
  assert.ok(!verifyMessageIntegritySha256(decodeStunMessage(out), KEY));
});

Deno.test("encoder misuse throws RangeError", () => {
  const misuses: StunMessage[] = [
    { ...message([]), transactionId: new Uint8Array(11) },
    { ...message([]), method: 0x1000 },
    message([{ type: "MESSAGE-INTEGRITY", hmac: new Uint8Array(20) }]),
    message([{ type: "FINGERPRINT", crc: 0 }]),
    message([{ type: "ERROR-CODE", code: 700, reason: "" }]),
    message([{ type: "ERROR-CODE", code: 299, reason: "" }]),
    message([{ type: "SOFTWARE", value: "x".repeat(764) }]),
    message([{ type: "USERNAME", value: "é".repeat(257) }]),
    message([{ type: "MAPPED-ADDRESS", address: { hostname: "example.org", port: 1 } }]),
    message([{ type: "MAPPED-ADDRESS", address: { hostname: "1.2.3.4", port: 65536 } }]),
    message([{ type: "MAPPED-ADDRESS", address: { hostname: "127.1", port: 1 } }]),
    message([{ type: "RESPONSE-PORT", port: -1 }]),
    message([{ type: "PRIORITY", priority: 2 ** 32 }]),
    message([{ type: "ICE-CONTROLLED", tieBreaker: 1n << 64n }]),
    message([{ type: "UNKNOWN-ATTRIBUTES", types: [0x10000] }]),
    message([{ type: "unknown", code: -1, value: new Uint8Array(0) }]),
    message([{ type: "PADDING", length: 0xfffc }, { type: "PADDING", length: 4 }]),
  ];
  for (const misuse of misuses) {
    assert.throws(
      () => encodeStunMessage(misuse),
      RangeError,
      JSON.stringify(misuse, (_, v) => typeof v === "bigint" ? v.toString() : v),
    );
  }
  // The largest message the length field allows is fine.
  const largest = encodeStunMessage(message([{ type: "PADDING", length: 0xffff - 4 - 3 }]));
  assert.equal(largest.length, 20 + 0xfffc);
  assert.equal(decodeStunMessage(largest).attributes.length, 1);
});

Deno.test("CRC-32 check value and SASLprep", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(saslprep("user"), "user");
  assert.equal(saslprep("I\u00ADX"), "IX"); // RFC 4013 §3's examples.
  assert.equal(saslprep("\u00AA"), "a");
  assert.equal(saslprep("\u2168"), "IX");
  assert.equal(saslprep("a\u00A0b\u3000c"), "a b c");
  assert.equal(saslprep("a\u200Bb"), "a b");
  assert.equal(saslprep("x\uFEFFy\u200Dz"), "xyz");
  for (const bad of ["\u0007", "a\u007Fb", "\uE000", "\uFFFE", "\uD800", "\u{E0041}", "\u2FF0"]) {
    assert.throws(
      () => saslprep(bad),
      (e) => e instanceof StunError && e.reason === "bad-credential",
    );
  }
  assert.throws(() => shortTermKey("tab\tpassword"), StunError);
});

Deno.test("bounded work: the largest messages decode or are refused quickly", () => {
  const started = performance.now();
  // One 65,528-byte unknown attribute.
  const big = rawMessage([[0xffff, bytesOf(0xffff - 4 - 3, 0xab)]], { fingerprint: false });
  assert.equal(decodeStunMessage(big).attributes.length, 1);
  // 16,383 empty attributes: refused at the cap, not walked.
  const many = rawMessage(Array.from({ length: 16383 }, () => [0x0002, bytesOf(0)] as const));
  for (let i = 0; i < 100; i++) refuses(many, "too-many-attributes");
  // 128 UNKNOWN-ATTRIBUTES of 248 types each.
  const lists = rawMessage(Array.from({ length: 128 }, () => [0x000a, bytesOf(496, 1)] as const));
  for (let i = 0; i < 10; i++) decodeStunMessage(lists);
  // A fingerprinted big message: one CRC pass.
  const fingerprinted = rawMessage([[0x8fff, bytesOf(60000)]], { fingerprint: true });
  for (let i = 0; i < 10; i++) assert.ok(decodeStunMessage(fingerprinted).hasFingerprint);
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 2_000, `took ${elapsed} ms`);
});
