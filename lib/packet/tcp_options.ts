/**
 * TCP options: maximum segment size (RFC 9293), window scale and timestamps (RFC 7323), SACK
 * and SACK-permitted (RFC 2018). Parsing is lenient like Linux's: unknown kinds are skipped,
 * a known kind with the wrong length is ignored, and a malformed length ends the parse.
 */
import { readU16, readU32, writeU16, writeU32 } from "./bytes.ts";

/** The largest window-scale shift (RFC 7323 §2.3); larger values are treated as this. */
export const MAX_WINDOW_SCALE = 14;
/** Room for options in a TCP header (data offset 15 words minus the 20-byte header). */
export const MAX_TCP_OPTIONS_LENGTH = 40;

const EOL = 0;
const NOP = 1;
const MSS = 2;
const WINDOW_SCALE = 3;
const SACK_PERMITTED = 4;
const SACK = 5;
const TIMESTAMP = 8;

/** A TCP timestamp option (RFC 7323 §3). */
export interface TcpTimestamp {
  /** TSval: the sender's clock. */
  value: number;
  /** TSecr: the most recent TSval received from the peer. */
  echo: number;
}

/** The TCP options this codec knows; absent ones are undefined. */
export interface TcpOptions {
  /** Maximum segment size. */
  mss?: number;
  /** Window-scale shift count (clamped to 14 when parsed). */
  windowScale?: number;
  /** Whether SACK-permitted is present. */
  sackPermitted?: boolean;
  /** The timestamp option. */
  timestamp?: TcpTimestamp;
  /** SACK blocks as [left edge, right edge) pairs of sequence numbers (at most 4). */
  sack?: Array<[number, number]>;
}

/** The result for a header without options, shared so parsing allocates nothing for it. */
const NO_OPTIONS: Readonly<TcpOptions> = Object.freeze({});

/** Parses the options in `bytes[start, end)` (the TCP header after its 20 fixed bytes). */
export function parseTcpOptions(
  bytes: Uint8Array,
  start: number,
  end: number,
): Readonly<TcpOptions> {
  if (start >= end) return NO_OPTIONS;
  const options: TcpOptions = {};
  let i = start;
  while (i < end) {
    const kind = bytes[i];
    if (kind === EOL) break;
    if (kind === NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) break;
    const length = bytes[i + 1];
    if (length < 2 || i + length > end) break;
    if (kind === MSS && length === 4) {
      options.mss = readU16(bytes, i + 2);
    } else if (kind === WINDOW_SCALE && length === 3) {
      options.windowScale = Math.min(bytes[i + 2], MAX_WINDOW_SCALE);
    } else if (kind === SACK_PERMITTED && length === 2) {
      options.sackPermitted = true;
    } else if (kind === TIMESTAMP && length === 10) {
      options.timestamp = { value: readU32(bytes, i + 2), echo: readU32(bytes, i + 6) };
    } else if (kind === SACK && length >= 10 && (length - 2) % 8 === 0) {
      const blocks: Array<[number, number]> = [];
      for (let at = i + 2; at < i + length; at += 8) {
        blocks.push([readU32(bytes, at), readU32(bytes, at + 4)]);
      }
      options.sack = blocks;
    }
    i += length;
  }
  return options;
}

/**
 * Bytes `writeTcpOptions` uses for these options, a multiple of 4. Throws a RangeError when
 * they exceed the 40 bytes a TCP header has room for, or a value does not fit its field.
 */
export function tcpOptionsLength(options: TcpOptions | undefined): number {
  if (!options) return 0;
  const { mss, windowScale } = options;
  if (mss !== undefined && !(mss >= 0 && mss <= 0xffff)) {
    throw new RangeError(`TCP MSS ${mss} does not fit 16 bits`);
  }
  if (windowScale !== undefined && !(windowScale >= 0 && windowScale <= MAX_WINDOW_SCALE)) {
    throw new RangeError(`TCP window scale ${windowScale} is outside 0-${MAX_WINDOW_SCALE}`);
  }
  let length = 0;
  if (options.mss !== undefined) length += 4;
  if (options.timestamp) length += 12; // SACK-permitted rides in its padding.
  else if (options.sackPermitted) length += 4;
  if (options.windowScale !== undefined) length += 4;
  if (options.sack?.length) length += 4 + 8 * options.sack.length;
  if (length > MAX_TCP_OPTIONS_LENGTH) {
    throw new RangeError(`TCP options need ${length} bytes; a header has room for 40`);
  }
  return length;
}

/**
 * Writes options at `out[offset]` in Linux's layout (MSS; SACK-permitted with timestamp;
 * NOP-padded window scale; SACK blocks), each padded to 4 bytes, and returns their length.
 */
export function writeTcpOptions(
  out: Uint8Array,
  offset: number,
  options: TcpOptions | undefined,
): number {
  if (!options) return 0;
  let at = offset;
  if (options.mss !== undefined) {
    out[at] = MSS;
    out[at + 1] = 4;
    writeU16(out, at + 2, options.mss);
    at += 4;
  }
  if (options.timestamp) {
    if (options.sackPermitted) {
      out[at] = SACK_PERMITTED;
      out[at + 1] = 2;
    } else {
      out[at] = NOP;
      out[at + 1] = NOP;
    }
    out[at + 2] = TIMESTAMP;
    out[at + 3] = 10;
    writeU32(out, at + 4, options.timestamp.value);
    writeU32(out, at + 8, options.timestamp.echo);
    at += 12;
  } else if (options.sackPermitted) {
    out[at] = NOP;
    out[at + 1] = NOP;
    out[at + 2] = SACK_PERMITTED;
    out[at + 3] = 2;
    at += 4;
  }
  if (options.windowScale !== undefined) {
    out[at] = NOP;
    out[at + 1] = WINDOW_SCALE;
    out[at + 2] = 3;
    out[at + 3] = options.windowScale;
    at += 4;
  }
  if (options.sack?.length) {
    out[at] = NOP;
    out[at + 1] = NOP;
    out[at + 2] = SACK;
    out[at + 3] = 2 + 8 * options.sack.length;
    at += 4;
    for (const [left, right] of options.sack) {
      writeU32(out, at, left);
      writeU32(out, at + 4, right);
      at += 8;
    }
  }
  return at - offset;
}
