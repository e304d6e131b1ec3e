/** Big-endian reads and writes on byte arrays, without allocating a DataView per packet. */

/** The unsigned 16-bit big-endian value at `offset`. */
export function readU16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset] << 8) | bytes[offset + 1];
}

/** The unsigned 32-bit big-endian value at `offset`. */
export function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) |
    bytes[offset + 3]) >>> 0;
}

/** Writes the low 16 bits of `value` big-endian at `offset`. */
export function writeU16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 8;
  bytes[offset + 1] = value;
}

/** Writes the low 32 bits of `value` big-endian at `offset`. */
export function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = value >>> 16;
  bytes[offset + 2] = value >>> 8;
  bytes[offset + 3] = value;
}

/**
 * Copies `source` to `target[offset...]` unless it already lies exactly there (a payload the
 * caller received straight into the packet buffer); overlapping ranges are copied correctly.
 */
export function placeBytes(target: Uint8Array, offset: number, source: Uint8Array): void {
  if (source.buffer === target.buffer && source.byteOffset === target.byteOffset + offset) return;
  target.set(source, offset);
}

/** Staging area so addresses can be written over the bytes they are read from. */
const addressScratch = new Uint8Array(32);

/**
 * Writes `src` then `dst` (each `size` bytes) contiguously at `out[offset]`. Either may be a
 * view into `out` itself, even of the very bytes being overwritten (swapping them in place).
 */
export function writeAddressPair(
  out: Uint8Array,
  offset: number,
  src: Uint8Array,
  dst: Uint8Array,
  size: number,
): void {
  for (let i = 0; i < size; i++) {
    addressScratch[i] = src[i];
    addressScratch[size + i] = dst[i];
  }
  for (let i = 0; i < 2 * size; i++) out[offset + i] = addressScratch[i];
}
