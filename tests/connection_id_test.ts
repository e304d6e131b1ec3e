/**
 * lib/quic/connection_id.ts: random connection IDs, reading a packet's destination
 * connection ID for both header forms, and stateless reset tokens.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  cidKey,
  destinationCidKey,
  LOCAL_CID_LENGTH,
  newConnectionId,
  resetToken,
} from "../lib/quic/connection_id.ts";

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function range(start: number, length: number): number[] {
  return Array.from({ length }, (_, i) => (start + i) & 0xff);
}

/** A long-header packet: flags, version 1, DCID length and DCID, SCID length and SCID, then filler. */
function longHeader(dcid: number[], scid: number[] = [0xaa, 0xbb], filler = 20): Uint8Array {
  return bytes(
    0xc3,
    0,
    0,
    0,
    1,
    dcid.length,
    ...dcid,
    scid.length,
    ...scid,
    ...range(0x70, filler),
  );
}

Deno.test("newConnectionId: 16 random bytes, different every time", () => {
  assert.equal(LOCAL_CID_LENGTH, 16);
  const seen = new Set<string>();
  const ones = new Array(LOCAL_CID_LENGTH * 8).fill(0);
  const N = 1000;
  for (let n = 0; n < N; n++) {
    const id = newConnectionId();
    assert.ok(id instanceof Uint8Array);
    assert.equal(id.length, 16);
    seen.add(cidKey(id));
    for (let bit = 0; bit < 128; bit++) ones[bit] += (id[bit >> 3] >> (bit & 7)) & 1;
  }
  assert.equal(seen.size, N, "1000 IDs are all distinct");
  // Each bit is set about half of the time (bounds are ~9 sigma: never flaky).
  for (let bit = 0; bit < 128; bit++) {
    assert.ok(ones[bit] > 350 && ones[bit] < 650, `bit ${bit} set ${ones[bit]} times of ${N}`);
  }
  const a = newConnectionId(), b = newConnectionId();
  assert.notDeepEqual(a, b);
});

Deno.test("cidKey: one char per byte, equal bytes give equal keys", () => {
  assert.equal(cidKey(bytes(0x41, 0x00, 0xff)), "A\u0000\u00ff");
  assert.equal(cidKey(bytes(9, 1, 2, 3, 9), 1, 3), "\u0001\u0002\u0003");
  assert.equal(cidKey(bytes()), "");
  assert.notEqual(cidKey(bytes(1, 2)), cidKey(bytes(2, 1)));
  assert.equal(cidKey(bytes(7, 8, 9), 0, 0), "");
});

Deno.test("destinationCidKey: long header reads the DCID length at byte 5", () => {
  const dcid = range(0x10, 8);
  const packet = longHeader(dcid);
  assert.equal(destinationCidKey(packet, packet.length), cidKey(bytes(...dcid)));
  // Longest DCID QUIC allows.
  const dcid20 = range(0x80, 20);
  const p20 = longHeader(dcid20);
  assert.equal(destinationCidKey(p20, p20.length), cidKey(bytes(...dcid20)));
  // Zero-length DCID.
  const p0 = longHeader([]);
  assert.equal(destinationCidKey(p0, p0.length), "");
  // Our own 16-byte IDs through a long header give the same key as through a short one.
  const ours = newConnectionId();
  const longPacket = longHeader([...ours]);
  const shortPacket = bytes(0x41, ...ours, 1, 2, 3);
  assert.equal(destinationCidKey(longPacket, longPacket.length), cidKey(ours));
  assert.equal(destinationCidKey(shortPacket, shortPacket.length), cidKey(ours));
});

Deno.test("destinationCidKey: long header boundaries", () => {
  const dcid = range(1, 8);
  const packet = longHeader(dcid, [], 0); // exactly 6 + 8 + 1 bytes
  // Exactly 6 + dcidLength bytes are enough; one fewer is not.
  assert.equal(destinationCidKey(packet, 14), cidKey(bytes(...dcid)));
  assert.equal(destinationCidKey(packet, 13), null);
  // Too short to hold the DCID length byte.
  for (let length = 1; length < 6; length++) {
    assert.equal(destinationCidKey(packet, length), null, `length ${length}`);
  }
  // Zero-length DCID needs exactly the 6 fixed bytes.
  assert.equal(destinationCidKey(bytes(0x80, 0, 0, 0, 1, 0), 6), "");
  // A DCID longer than 20 bytes is malformed, even when the bytes are there.
  const long21 = longHeader(range(0, 21));
  assert.equal(destinationCidKey(long21, long21.length), null);
  const long255 = bytes(0xc0, 0, 0, 0, 1, 255, ...range(0, 255));
  assert.equal(destinationCidKey(long255, long255.length), null);
  // `length`, not the buffer's size, bounds the packet: a 2048-byte slot holding 10 bytes.
  const slot = new Uint8Array(2048).fill(7);
  slot.set(bytes(0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4));
  assert.equal(destinationCidKey(slot, 10), null);
  assert.equal(destinationCidKey(slot, 14), cidKey(bytes(1, 2, 3, 4, 7, 7, 7, 7)));
});

Deno.test("destinationCidKey: short header reads the 16 bytes after byte 0", () => {
  const cid = range(0x20, 16);
  const packet = bytes(0x40, ...cid, ...range(0xf0, 30));
  assert.equal(destinationCidKey(packet, packet.length), cidKey(bytes(...cid)));
  // Exactly 17 bytes are enough, 16 are not.
  assert.equal(destinationCidKey(packet, 17), cidKey(bytes(...cid)));
  assert.equal(destinationCidKey(packet, 16), null);
  assert.equal(destinationCidKey(packet, 1), null);
  // Bit 0x80 clear means short header whatever the other bits are.
  const other = bytes(0x7f, ...cid);
  assert.equal(destinationCidKey(other, 17), cidKey(bytes(...cid)));
});

Deno.test("destinationCidKey: empty packets give null", () => {
  assert.equal(destinationCidKey(new Uint8Array(0), 0), null);
  assert.equal(destinationCidKey(new Uint8Array(64), 0), null);
  assert.equal(destinationCidKey(bytes(0xc0), 1), null);
  assert.equal(destinationCidKey(bytes(0x40), 1), null);
});

Deno.test("resetToken: 16 bytes of HMAC-SHA256(secret, cid), per (secret, cid)", () => {
  const secret = Uint8Array.from(range(0x30, 32));
  const cid = Uint8Array.from(range(0x01, 16));
  const token = resetToken(secret, cid);
  assert.ok(token instanceof Uint8Array);
  assert.equal(token.length, 16);
  assert.equal(token.byteLength, 16);
  const expected = createHmac("sha256", secret).update(cid).digest().subarray(0, 16);
  assert.deepEqual([...token], [...expected]);
  // Deterministic.
  assert.deepEqual([...resetToken(secret, cid)], [...token]);
  assert.deepEqual([...resetToken(secret.slice(), cid.slice())], [...token]);
  // Differs across connection IDs and across secrets.
  const tokens = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const other = cid.slice();
    other[i % 16] ^= 1 + (i >> 4);
    tokens.add(cidKey(resetToken(secret, other)));
  }
  tokens.add(cidKey(token));
  assert.equal(tokens.size, 201);
  const otherSecret = secret.slice();
  otherSecret[31] ^= 1;
  assert.notDeepEqual([...resetToken(otherSecret, cid)], [...token]);
});

Deno.test("resetToken: known answer", () => {
  // HMAC-SHA256 with a 32-byte zero key over 16 zero bytes, first 16 bytes (computed with openssl).
  const token = resetToken(new Uint8Array(32), new Uint8Array(16));
  assert.equal(
    Array.from(token, (b) => b.toString(16).padStart(2, "0")).join(""),
    "853c7403937d8b6239569b184eb7993f",
  );
});
