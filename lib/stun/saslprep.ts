/**
 * SASLprep (RFC 4013), the string preparation STUN applies to passwords before using them
 * as keys: non-ASCII spaces become U+0020, "commonly mapped to nothing" characters go, NFKC
 * normalizes, and prohibited characters (controls, private use, non-characters, surrogates,
 * tags, ...) are refused. Unassigned code points are allowed (the "query" profile). The
 * bidirectional-text check of RFC 3454 §6 is not done: JavaScript has no Bidi_Class property.
 */
import { StunError } from "./errors.ts";

/** RFC 3454 C.1.2: non-ASCII space characters, mapped to U+0020. */
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/gu;
/** RFC 3454 B.1: characters commonly mapped to nothing. */
const MAPPED_TO_NOTHING =
  /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu;

/** Whether a code point is prohibited in SASLprep output (RFC 4013 §2.3). */
function prohibited(cp: number): boolean {
  return (
    cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || // C.2.1, C.2.2 controls
    cp === 0x00a0 || cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200b) || cp === 0x202f ||
    cp === 0x205f || cp === 0x3000 || // C.1.2 non-ASCII spaces
    cp === 0x0340 || cp === 0x0341 || cp === 0x06dd || cp === 0x070f || cp === 0x180e ||
    (cp >= 0x200c && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
    (cp >= 0x2060 && cp <= 0x2063) || (cp >= 0x206a && cp <= 0x206f) || cp === 0xfeff ||
    (cp >= 0x1d173 && cp <= 0x1d17a) || // C.2.2, C.8 format and bidi controls
    (cp >= 0x2ff0 && cp <= 0x2ffb) || // C.7 ideographic description
    (cp >= 0xd800 && cp <= 0xdfff) || // C.5 surrogates (lone ones, in a JS string)
    (cp >= 0xe000 && cp <= 0xf8ff) || cp >= 0xf0000 || // C.3 private use (planes 15, 16 too)
    (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe || // C.4 non-characters
    (cp >= 0xfff9 && cp <= 0xfffd) || // C.6 inappropriate for plain text
    cp === 0xe0001 || (cp >= 0xe0020 && cp <= 0xe007f) // C.9 tags
  );
}

/** SASLprep of `text`; throws a StunError ("bad-credential") for a prohibited character. */
export function saslprep(text: string): string {
  const prepared = text.replace(NON_ASCII_SPACE, " ").replace(MAPPED_TO_NOTHING, "").normalize(
    "NFKC",
  );
  for (const char of prepared) {
    const cp = char.codePointAt(0)!;
    if (prohibited(cp)) {
      throw new StunError(
        "bad-credential",
        `SASLprep prohibits U+${cp.toString(16).toUpperCase().padStart(4, "0")}`,
      );
    }
  }
  return prepared;
}
