/**
 * The Internet checksum (RFC 1071): the one's complement of the one's-complement sum of
 * 16-bit big-endian words. Sums are plain numbers left unfolded until `finishChecksum`, so
 * ranges (and pseudo-header sums) can be added to the same running sum in any order.
 */

/** Whether this host stores numbers little-endian (then 32-bit loads can sum two words). */
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
/** Ranges shorter than this are summed byte by byte: a 32-bit view costs more than it saves. */
const WIDE_MINIMUM = 64;

/**
 * Adds `bytes[start, end)` to `sum` as 16-bit big-endian words. An odd last byte is padded
 * with zero, so every range but the last one added must have even length; use
 * `ChecksumAccumulator` for ranges of any length.
 */
export function sumWords(
  bytes: Uint8Array,
  start = 0,
  end: number = bytes.length,
  sum = 0,
): number {
  const evenEnd = end - ((end - start) & 1);
  let i = start;
  if (LITTLE_ENDIAN && evenEnd - i >= WIDE_MINIMUM) {
    if (((bytes.byteOffset + i) & 3) === 2) {
      sum += (bytes[i] << 8) | bytes[i + 1];
      i += 2;
    }
    if (((bytes.byteOffset + i) & 3) === 0) {
      const count = (evenEnd - i) >>> 2;
      const words = new Uint32Array(bytes.buffer, bytes.byteOffset + i, count);
      let wide = 0; // below 2^53 for any IP packet: 16,384 words of at most 2^32
      let k = 0;
      for (; k + 3 < count; k += 4) wide += words[k] + words[k + 1] + words[k + 2] + words[k + 3];
      for (; k < count; k++) wide += words[k];
      // Each 32-bit load holds two byte-swapped words, the second times 2^16 (≡ 1): their
      // one's-complement sum is the byte-swapped sum of the words (RFC 1071 §2 B).
      const folded = foldSum(wide);
      sum += ((folded & 0xff) << 8) | (folded >>> 8);
      i += count << 2;
    }
  }
  // Two words per step: a 1500-byte packet stays far below 2^53, so no intermediate folding.
  for (; i + 3 < evenEnd; i += 4) {
    sum += ((bytes[i] << 8) | bytes[i + 1]) + ((bytes[i + 2] << 8) | bytes[i + 3]);
  }
  if (i < evenEnd) sum += (bytes[i] << 8) | bytes[i + 1];
  if (evenEnd < end) sum += bytes[evenEnd] << 8;
  return sum;
}

/** Folds the carries of a running sum into 16 bits. */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value for a running sum: the one's complement of its folded value. */
export function finishChecksum(sum: number): number {
  return ~foldSum(sum) & 0xffff;
}

/** The Internet checksum of `bytes[start, end)`. */
export function internetChecksum(bytes: Uint8Array, start = 0, end: number = bytes.length): number {
  return finishChecksum(sumWords(bytes, start, end));
}

/**
 * Whether `bytes[start, end)`, which contains its own checksum field, verifies: its words plus
 * `sum` (a pseudo-header sum, or 0) add up to 0xffff.
 */
export function checksumVerifies(
  bytes: Uint8Array,
  start: number,
  end: number,
  sum = 0,
): boolean {
  return foldSum(sumWords(bytes, start, end, sum)) === 0xffff;
}

/** The IPv4 pseudo-header sum (RFC 768, RFC 9293 §3.1): addresses, protocol, segment length. */
export function pseudoHeaderSumV4(
  src: Uint8Array,
  dst: Uint8Array,
  protocol: number,
  length: number,
): number {
  return sumWords(src, 0, 4, sumWords(dst, 0, 4)) + protocol + length;
}

/** The IPv6 pseudo-header sum (RFC 8200 §8.1): addresses, 32-bit length, next header. */
export function pseudoHeaderSumV6(
  src: Uint8Array,
  dst: Uint8Array,
  nextHeader: number,
  length: number,
): number {
  return sumWords(src, 0, 16, sumWords(dst, 0, 16)) + Math.floor(length / 0x10000) +
    (length & 0xffff) + nextHeader;
}

/** The pseudo-header sum for 4-byte (IPv4) or 16-byte (IPv6) addresses. */
export function pseudoHeaderSum(
  src: Uint8Array,
  dst: Uint8Array,
  protocol: number,
  length: number,
): number {
  return src.length === 4
    ? pseudoHeaderSumV4(src, dst, protocol, length)
    : pseudoHeaderSumV6(src, dst, protocol, length);
}

/**
 * A checksum over consecutive ranges of any length, e.g. a TCP header followed by payload
 * that wraps around a ring buffer: an odd-length range is continued by the next one.
 */
export class ChecksumAccumulator {
  #sum = 0;
  #odd = false;

  /** Adds a sum that is already word-aligned, such as a pseudo-header sum. */
  addSum(sum: number): this {
    this.#sum += sum;
    return this;
  }

  /** Adds `bytes[start, end)` as the continuation of everything added so far. */
  add(bytes: Uint8Array, start = 0, end: number = bytes.length): this {
    if (start >= end) return this;
    if (this.#odd) this.#sum += bytes[start++]; // Low byte of the word the last range began.
    this.#sum = sumWords(bytes, start, end, this.#sum);
    this.#odd = ((end - start) & 1) === 1;
    return this;
  }

  /** The checksum field value for everything added. */
  checksum(): number {
    return finishChecksum(this.#sum);
  }
}
