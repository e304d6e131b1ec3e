/** Byte helpers for the packet codec tests. */

/**
 * A copy of `bytes` as a view at an odd offset inside a larger buffer whose other bytes are
 * 0xee, so a codec that ignores byteOffset (or reads past the view) goes wrong.
 */
export function embed(bytes: Uint8Array): Uint8Array {
  const buffer = new Uint8Array(bytes.length + 64).fill(0xee);
  buffer.set(bytes, 13);
  return buffer.subarray(13, 13 + bytes.length);
}

/** A 0xee-filled view of `length` bytes at an odd offset in a larger buffer, to build into. */
export function scratch(length: number): Uint8Array {
  return new Uint8Array(length + 64).fill(0xee).subarray(13, 13 + length);
}

/** A deterministic PRNG (xorshift32) returning integers in [0, n). */
export function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

/**
 * Recomputes an IPv4 header checksum in place (the slow, obvious way), so that a test's edit
 * to other fields is what a parser rejects.
 */
export function resealIpv4(bytes: Uint8Array): Uint8Array {
  bytes[10] = bytes[11] = 0;
  const length = Math.min((bytes[0] & 15) * 4, bytes.length);
  let sum = 0;
  for (let i = 0; i + 1 < length; i += 2) sum += bytes[i] * 256 + bytes[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  bytes[10] = (0xffff - sum) >> 8;
  bytes[11] = (0xffff - sum) & 0xff;
  return bytes;
}
