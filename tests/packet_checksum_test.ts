/**
 * lib/packet/checksum.ts: the RFC 1071 Internet checksum against its worked example, a
 * naive reference, split accumulation (odd splits included) and explicitly laid-out
 * pseudo-headers.
 */
import assert from "node:assert/strict";
import {
  ChecksumAccumulator,
  checksumVerifies,
  finishChecksum,
  foldSum,
  internetChecksum,
  pseudoHeaderSum,
  pseudoHeaderSumV4,
  pseudoHeaderSumV6,
  sumWords,
} from "../lib/packet/mod.ts";
import { embed, prng } from "./packet/bytes.ts";

/** The checksum computed the slow, obvious way: 16-bit words, folding after every add. */
function naiveChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += bytes[i] * 256 + (i + 1 < bytes.length ? bytes[i + 1] : 0);
    if (sum > 0xffff) sum -= 0xffff;
  }
  return 0xffff - sum;
}

Deno.test("checksum: RFC 1071 §3 worked example", () => {
  const bytes = Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
  assert.equal(sumWords(bytes), 0x2ddf0);
  assert.equal(foldSum(0x2ddf0), 0xddf2);
  assert.equal(internetChecksum(bytes), 0x220d);
});

Deno.test("checksum: a real IPv4 header's known checksum (0xb861)", () => {
  const header = Uint8Array.from(
    "450000730000400040110000c0a80001c0a800c7".match(/../g)!.map((h) => parseInt(h, 16)),
  );
  assert.equal(internetChecksum(header), 0xb861);
  header[10] = 0xb8;
  header[11] = 0x61;
  assert.ok(checksumVerifies(header, 0, 20));
  header[11] ^= 1;
  assert.ok(!checksumVerifies(header, 0, 20));
});

Deno.test("checksum: matches a naive reference on 2,000 random ranges, byteOffset honoured", () => {
  const random = prng(1071);
  for (let round = 0; round < 2000; round++) {
    const bytes = new Uint8Array(random(1600));
    for (let i = 0; i < bytes.length; i++) bytes[i] = random(256);
    if (round % 7 === 0) bytes.fill(0xff);
    const view = embed(bytes);
    assert.equal(internetChecksum(view), naiveChecksum(bytes), `length ${bytes.length}`);
    const start = random(bytes.length + 1);
    const end = start + random(bytes.length - start + 1);
    assert.equal(
      internetChecksum(view, start, end),
      naiveChecksum(bytes.subarray(start, end)),
      `range ${start}-${end}`,
    );
  }
});

Deno.test("checksum: 32-bit summing at every alignment and up to 64 KiB equals the reference", () => {
  const random = prng(4);
  const big = new Uint8Array(65_536 + 8);
  for (let i = 0; i < big.length; i++) big[i] = random(256);
  for (const length of [63, 64, 65, 66, 1_240, 9_000, 65_535]) {
    for (let offset = 0; offset < 4; offset++) {
      const range = big.subarray(offset, offset + length);
      assert.equal(internetChecksum(range), naiveChecksum(range), `${length} at ${offset}`);
      const all = range.slice().fill(0xff);
      assert.equal(internetChecksum(all), naiveChecksum(all), `0xff x ${length} at ${offset}`);
    }
  }
});

Deno.test("checksum: accumulating split ranges, odd splits included, equals one pass", () => {
  const random = prng(7);
  for (let round = 0; round < 500; round++) {
    const bytes = Uint8Array.from({ length: 1 + random(300) }, () => random(256));
    const whole = internetChecksum(bytes);
    const accumulator = new ChecksumAccumulator();
    let at = 0;
    while (at < bytes.length) {
      const next = Math.min(bytes.length, at + random(9)); // Empty and odd pieces too.
      accumulator.add(bytes, at, next);
      at = next;
    }
    assert.equal(accumulator.checksum(), whole, `round ${round}`);
    // Even-length pieces can also go through plain running sums.
    const split = random(bytes.length + 1) & ~1;
    assert.equal(
      finishChecksum(sumWords(bytes, split, bytes.length, sumWords(bytes, 0, split))),
      whole,
    );
  }
});

Deno.test("checksum: ChecksumAccumulator across two buffers, like a ring buffer wrap", () => {
  const a = Uint8Array.from([1, 2, 3]);
  const b = Uint8Array.from([4, 5, 6, 7, 8]);
  const joined = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const pseudo = 0x1234 + 0xabcd;
  const expected = finishChecksum(sumWords(joined, 0, 8, pseudo));
  assert.equal(new ChecksumAccumulator().addSum(pseudo).add(a).add(b).checksum(), expected);
  assert.equal(new ChecksumAccumulator().add(a).add(b).addSum(pseudo).checksum(), expected);
});

Deno.test("checksum: foldSum keeps folding sums above 2^32", () => {
  assert.equal(foldSum(0), 0);
  assert.equal(foldSum(0xffff), 0xffff);
  assert.equal(foldSum(0x10000), 1);
  assert.equal(foldSum(0x1fffe), 0xffff);
  // 2^40 + 5 = 0x100_0000_0005: words 0x0100, 0x0000, 0x0005 fold to 0x0105.
  assert.equal(foldSum(2 ** 40 + 5), 0x0105);
  assert.equal(finishChecksum(0xffff), 0);
});

Deno.test("checksum: pseudo-header sums equal the laid-out RFC 768 / RFC 8200 pseudo-headers", () => {
  const src4 = Uint8Array.from([192, 0, 2, 1]);
  const dst4 = Uint8Array.from([198, 51, 100, 254]);
  // src, dst, zero, protocol, 16-bit length.
  const v4 = Uint8Array.from([...src4, ...dst4, 0, 17, 0x05, 0xdc]);
  assert.equal(foldSum(pseudoHeaderSumV4(src4, dst4, 17, 1500)), foldSum(sumWords(v4)));
  assert.equal(pseudoHeaderSum(src4, dst4, 17, 1500), pseudoHeaderSumV4(src4, dst4, 17, 1500));

  const src6 = Uint8Array.from({ length: 16 }, (_, i) => 0x20 + i * 7);
  const dst6 = Uint8Array.from({ length: 16 }, (_, i) => 0xff - i * 3);
  // src, dst, 32-bit length, three zero bytes, next header.
  const length = 0x12345;
  const v6 = Uint8Array.from([
    ...src6,
    ...dst6,
    0x00,
    0x01,
    0x23,
    0x45,
    0,
    0,
    0,
    6,
  ]);
  assert.equal(foldSum(pseudoHeaderSumV6(src6, dst6, 6, length)), foldSum(sumWords(v6)));
  assert.equal(pseudoHeaderSum(src6, dst6, 58, 8), pseudoHeaderSumV6(src6, dst6, 58, 8));
});
