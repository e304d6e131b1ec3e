/**
 * Attribute values between bytes and typed attributes: strict decoding (exact lengths, known
 * address families, strict UTF-8, bounded text) that throws only StunError, and encoding that
 * throws RangeError on a misuse (an attribute no valid message could carry).
 */
import { readU16, readU32, writeU16, writeU32 } from "../packet/bytes.ts";
import type { StunAttribute } from "./attributes.ts";
import {
  ATTRIBUTE_CODES,
  ATTRIBUTE_NAMES,
  MAGIC_COOKIE,
  MAX_TEXT_BYTES,
  MAX_USERNAME_BYTES,
} from "./constants.ts";
import { StunError } from "./errors.ts";
import { ipFromBytes, ipToBytes } from "./socket_address.ts";

const FAMILY_IPV4 = 0x01;
const FAMILY_IPV6 = 0x02;
/** CHANGE-REQUEST flag bits (RFC 5780 §7.2: the A and B bits of a 32-bit value). */
const CHANGE_IP = 0x04;
const CHANGE_PORT = 0x02;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

function expectLength(name: string, value: Uint8Array, length: number): void {
  if (value.length !== length) {
    throw new StunError(
      "bad-attribute-length",
      `${name} must be ${length} bytes, got ${value.length}`,
    );
  }
}

function decodeAddress(
  name: string,
  value: Uint8Array,
  xor: boolean,
  transactionId: Uint8Array,
): { hostname: string; port: number } {
  if (value.length < 4) {
    throw new StunError("bad-attribute-length", `${name} of ${value.length} bytes`);
  }
  // value[0] is reserved: senders zero it, receivers ignore it.
  const family = value[1];
  if (family !== FAMILY_IPV4 && family !== FAMILY_IPV6) {
    throw new StunError("bad-address-family", `${name} with family 0x${family.toString(16)}`);
  }
  const size = family === FAMILY_IPV4 ? 4 : 16;
  expectLength(name, value, 4 + size);
  let port = readU16(value, 2);
  const ip = value.slice(4, 4 + size);
  if (xor) {
    port ^= MAGIC_COOKIE >>> 16;
    xorAddress(ip, transactionId);
  }
  return { hostname: ipFromBytes(ip), port };
}

/** XORs an address with the cookie (IPv4) or the cookie and transaction ID (IPv6), in place. */
function xorAddress(ip: Uint8Array, transactionId: Uint8Array): void {
  const mask = [
    MAGIC_COOKIE >>> 24,
    (MAGIC_COOKIE >>> 16) & 0xff,
    (MAGIC_COOKIE >>> 8) & 0xff,
    MAGIC_COOKIE & 0xff,
  ];
  for (let i = 0; i < ip.length; i++) ip[i] ^= i < 4 ? mask[i] : transactionId[i - 4];
}

function decodeText(name: string, value: Uint8Array, max: number): string {
  if (value.length > max) {
    throw new StunError("value-too-long", `${name} of ${value.length} bytes (at most ${max})`);
  }
  try {
    return utf8.decode(value);
  } catch {
    throw new StunError("bad-utf8", `${name} is not valid UTF-8`);
  }
}

/**
 * Decodes one attribute value (padding excluded) of the given type code; unknown types come
 * back as "unknown" with a copy of their bytes. Throws a StunError if the value is malformed.
 */
export function decodeAttribute(
  code: number,
  value: Uint8Array,
  transactionId: Uint8Array,
): StunAttribute {
  const type = ATTRIBUTE_NAMES.get(code);
  switch (type) {
    case undefined:
      return { type: "unknown", code, value: value.slice() };
    case "MAPPED-ADDRESS":
    case "RESPONSE-ORIGIN":
    case "OTHER-ADDRESS":
    case "ALTERNATE-SERVER":
      return { type, address: decodeAddress(type, value, false, transactionId) };
    case "XOR-MAPPED-ADDRESS":
      return { type, address: decodeAddress(type, value, true, transactionId) };
    case "USERNAME":
      return { type, value: decodeText(type, value, MAX_USERNAME_BYTES) };
    case "REALM":
    case "NONCE":
    case "SOFTWARE":
      return { type, value: decodeText(type, value, MAX_TEXT_BYTES) };
    case "CHANGE-REQUEST": {
      expectLength(type, value, 4);
      const flags = readU32(value, 0);
      return { type, changeIp: (flags & CHANGE_IP) !== 0, changePort: (flags & CHANGE_PORT) !== 0 };
    }
    case "RESPONSE-PORT":
      expectLength(type, value, 4);
      return { type, port: readU16(value, 0) };
    case "PADDING":
      return { type, length: value.length };
    case "ERROR-CODE": {
      if (value.length < 4) {
        throw new StunError("bad-attribute-length", `ERROR-CODE of ${value.length} bytes`);
      }
      const errorClass = value[2] & 0x07;
      const number = value[3];
      if (errorClass < 3 || errorClass > 6 || number > 99) {
        throw new StunError("bad-error-code", `ERROR-CODE class ${errorClass} number ${number}`);
      }
      return {
        type,
        code: errorClass * 100 + number,
        reason: decodeText("ERROR-CODE reason", value.subarray(4), MAX_TEXT_BYTES),
      };
    }
    case "UNKNOWN-ATTRIBUTES": {
      if (value.length % 2 !== 0) {
        throw new StunError("bad-attribute-length", `UNKNOWN-ATTRIBUTES of ${value.length} bytes`);
      }
      const types: number[] = [];
      for (let i = 0; i < value.length; i += 2) types.push(readU16(value, i));
      return { type, types };
    }
    case "PRIORITY":
      expectLength(type, value, 4);
      return { type, priority: readU32(value, 0) };
    case "USE-CANDIDATE":
      expectLength(type, value, 0);
      return { type };
    case "ICE-CONTROLLED":
    case "ICE-CONTROLLING":
      expectLength(type, value, 8);
      return {
        type,
        tieBreaker: (BigInt(readU32(value, 0)) << 32n) | BigInt(readU32(value, 4)),
      };
    case "MESSAGE-INTEGRITY":
      expectLength(type, value, 20);
      return { type, hmac: value.slice() };
    case "MESSAGE-INTEGRITY-SHA256":
      // RFC 8489 §14.6: at least 16 bytes, a multiple of 4, at most the 32 of SHA-256.
      if (value.length < 16 || value.length > 32 || value.length % 4 !== 0) {
        throw new StunError("bad-attribute-length", `${type} of ${value.length} bytes`);
      }
      return { type, hmac: value.slice() };
    case "FINGERPRINT":
      expectLength(type, value, 4);
      return { type, crc: readU32(value, 0) };
  }
}

function encodeAddress(
  address: { hostname: string; port: number },
  xor: boolean,
  transactionId: Uint8Array,
): Uint8Array {
  if (!Number.isInteger(address.port) || address.port < 0 || address.port > 0xffff) {
    throw new RangeError(`port ${address.port} out of range`);
  }
  const ip = ipToBytes(address.hostname);
  const out = new Uint8Array(4 + ip.length);
  out[1] = ip.length === 4 ? FAMILY_IPV4 : FAMILY_IPV6;
  if (xor) xorAddress(ip, transactionId);
  writeU16(out, 2, xor ? address.port ^ (MAGIC_COOKIE >>> 16) : address.port);
  out.set(ip, 4);
  return out;
}

function encodeText(name: string, text: string, max: number): Uint8Array {
  const bytes = utf8Encoder.encode(text);
  if (bytes.length > max) {
    throw new RangeError(`${name} of ${bytes.length} bytes exceeds ${max}`);
  }
  return bytes;
}

function u32(value: number, name: string): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`${name} ${value} is not a 32-bit unsigned integer`);
  }
  const out = new Uint8Array(4);
  writeU32(out, 0, value);
  return out;
}

/**
 * The type code and value bytes (padding excluded) of an attribute. Throws a RangeError for
 * MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (the encoder computes those)
 * and for values no valid message carries.
 */
export function encodeAttribute(
  attribute: StunAttribute,
  transactionId: Uint8Array,
): { code: number; value: Uint8Array } {
  if (attribute.type === "unknown") {
    if (!Number.isInteger(attribute.code) || attribute.code < 0 || attribute.code > 0xffff) {
      throw new RangeError(`attribute type ${attribute.code} out of range`);
    }
    return { code: attribute.code, value: attribute.value };
  }
  const code = ATTRIBUTE_CODES[attribute.type];
  switch (attribute.type) {
    case "MAPPED-ADDRESS":
    case "RESPONSE-ORIGIN":
    case "OTHER-ADDRESS":
    case "ALTERNATE-SERVER":
      return { code, value: encodeAddress(attribute.address, false, transactionId) };
    case "XOR-MAPPED-ADDRESS":
      return { code, value: encodeAddress(attribute.address, true, transactionId) };
    case "USERNAME":
      return { code, value: encodeText(attribute.type, attribute.value, MAX_USERNAME_BYTES) };
    case "REALM":
    case "NONCE":
    case "SOFTWARE":
      return { code, value: encodeText(attribute.type, attribute.value, MAX_TEXT_BYTES) };
    case "CHANGE-REQUEST":
      return {
        code,
        value: u32(
          (attribute.changeIp ? CHANGE_IP : 0) | (attribute.changePort ? CHANGE_PORT : 0),
          "flags",
        ),
      };
    case "RESPONSE-PORT": {
      if (!Number.isInteger(attribute.port) || attribute.port < 0 || attribute.port > 0xffff) {
        throw new RangeError(`RESPONSE-PORT ${attribute.port} out of range`);
      }
      const value = new Uint8Array(4);
      writeU16(value, 0, attribute.port);
      return { code, value };
    }
    case "PADDING":
      if (
        !Number.isInteger(attribute.length) || attribute.length < 0 || attribute.length > 0xffff
      ) {
        throw new RangeError(`PADDING of ${attribute.length} bytes`);
      }
      return { code, value: new Uint8Array(attribute.length) };
    case "ERROR-CODE": {
      if (!Number.isInteger(attribute.code) || attribute.code < 300 || attribute.code > 699) {
        throw new RangeError(`error code ${attribute.code} is not 300-699`);
      }
      const reason = encodeText("ERROR-CODE reason", attribute.reason, MAX_TEXT_BYTES);
      const value = new Uint8Array(4 + reason.length);
      value[2] = Math.floor(attribute.code / 100);
      value[3] = attribute.code % 100;
      value.set(reason, 4);
      return { code, value };
    }
    case "UNKNOWN-ATTRIBUTES": {
      const value = new Uint8Array(2 * attribute.types.length);
      attribute.types.forEach((type, i) => {
        if (!Number.isInteger(type) || type < 0 || type > 0xffff) {
          throw new RangeError(`attribute type ${type} out of range`);
        }
        writeU16(value, 2 * i, type);
      });
      return { code, value };
    }
    case "PRIORITY":
      return { code, value: u32(attribute.priority, "PRIORITY") };
    case "USE-CANDIDATE":
      return { code, value: new Uint8Array(0) };
    case "ICE-CONTROLLED":
    case "ICE-CONTROLLING": {
      if (attribute.tieBreaker < 0n || attribute.tieBreaker >= 1n << 64n) {
        throw new RangeError(`tie-breaker ${attribute.tieBreaker} is not 64-bit unsigned`);
      }
      const value = new Uint8Array(8);
      writeU32(value, 0, Number(attribute.tieBreaker >> 32n));
      writeU32(value, 4, Number(attribute.tieBreaker & 0xffffffffn));
      return { code, value };
    }
    case "MESSAGE-INTEGRITY":
    case "MESSAGE-INTEGRITY-SHA256":
    case "FINGERPRINT":
      throw new RangeError(`${attribute.type} is computed by the encoder: ask for it in options`);
  }
}
