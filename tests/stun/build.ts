/** Hand-built STUN bytes for the codec tests: messages no encoder would write. */
import { writeU16, writeU32 } from "../../lib/packet/bytes.ts";
import { computeFingerprint, MAGIC_COOKIE } from "../../lib/stun/mod.ts";

/** A raw attribute: type code and value, padded with zeros when placed. */
export type RawAttribute = readonly [code: number, value: Uint8Array];

/**
 * A message of the given type with these attributes laid out as they are (lengths as given,
 * zero padding) and a correct length field; with `fingerprint`, a matching FINGERPRINT last.
 */
export function rawMessage(
  attributes: readonly RawAttribute[],
  options: { type?: number; transactionId?: Uint8Array; fingerprint?: boolean } = {},
): Uint8Array {
  const body = attributes.reduce((n, [, value]) => n + 4 + ((value.length + 3) & ~3), 0);
  const out = new Uint8Array(20 + body + (options.fingerprint ? 8 : 0));
  writeU16(out, 0, options.type ?? 0x0001);
  writeU16(out, 2, out.length - 20);
  writeU32(out, 4, MAGIC_COOKIE);
  out.set(options.transactionId ?? new Uint8Array(12).fill(7), 8);
  let at = 20;
  for (const [code, value] of attributes) {
    writeU16(out, at, code);
    writeU16(out, at + 2, value.length);
    out.set(value, at + 4);
    at += 4 + ((value.length + 3) & ~3);
  }
  if (options.fingerprint) {
    writeU16(out, at, 0x8028);
    writeU16(out, at + 2, 4);
    writeU32(out, at + 4, computeFingerprint(out, at));
  }
  return out;
}

/** `length` bytes of `fill`. */
export function bytesOf(length: number, fill = 0): Uint8Array {
  return new Uint8Array(length).fill(fill);
}
