/** Typed errors for quiche error codes and for how connections end. */
import { QUICHE_ERRORS } from "../../ffi/quiche_constants.ts";

/** A quiche call failed with one of `enum quiche_error`'s codes. */
export class QuicheError extends Error {
  /** The numeric code (negative). */
  readonly code: number;
  /** The code's name, e.g. "TlsFail". */
  readonly codeName: string;

  constructor(operation: string, code: number) {
    const codeName = QUICHE_ERRORS[code] ?? `Unknown(${code})`;
    super(`${operation} failed: ${codeName}`);
    this.name = "QuicheError";
    this.code = code;
    this.codeName = codeName;
  }
}

/** TLS alert descriptions (RFC 8446 §6) that a failed handshake reports. */
const TLS_ALERTS: Readonly<Record<number, string>> = {
  0: "close notify",
  10: "unexpected message",
  20: "bad record MAC",
  40: "handshake failure",
  42: "bad certificate",
  43: "unsupported certificate",
  44: "certificate revoked",
  45: "certificate expired",
  46: "certificate unknown",
  47: "illegal parameter",
  48: "unknown CA",
  49: "access denied",
  50: "decode error",
  51: "decrypt error",
  70: "protocol version",
  71: "insufficient security",
  80: "internal error",
  86: "inappropriate fallback",
  109: "missing extension",
  110: "unsupported extension",
  112: "unrecognized name",
  116: "certificate required",
  120: "no application protocol",
};

/** QUIC transport error codes (RFC 9000 §20.1). */
const TRANSPORT_ERRORS: Readonly<Record<number, string>> = {
  0x0: "no error",
  0x1: "internal error",
  0x2: "connection refused",
  0x3: "flow control error",
  0x4: "stream limit error",
  0x5: "stream state error",
  0x6: "final size error",
  0x7: "frame encoding error",
  0x8: "transport parameter error",
  0x9: "connection ID limit error",
  0xa: "protocol violation",
  0xb: "invalid token",
  0xc: "application error",
  0xd: "crypto buffer exceeded",
  0xe: "key update error",
  0xf: "AEAD limit reached",
  0x10: "no viable path",
};

/** Who ended a connection and why, as reported by quiche. */
export interface CloseReason {
  /** "peer" sent CONNECTION_CLOSE, "local" sent it, "idle" means the idle timer expired. */
  by: "peer" | "local" | "idle";
  /** An application close (true) or a transport/TLS one (false). */
  isApplication: boolean;
  /** The error code carried by CONNECTION_CLOSE (0 for an idle timeout). */
  code: number;
  /** The reason phrase carried by CONNECTION_CLOSE. */
  reason: string;
}

/** Renders a transport error code, naming TLS alerts (codes 0x100-0x1ff). */
export function describeTransportError(code: number): string {
  if (code >= 0x100 && code <= 0x1ff) {
    const alert = code - 0x100;
    return `TLS alert ${alert} (${TLS_ALERTS[alert] ?? "unknown"})`;
  }
  return TRANSPORT_ERRORS[code] ?? `transport error 0x${code.toString(16)}`;
}

/** A one-line, human description of a close reason. */
export function describeClose(close: CloseReason): string {
  if (close.by === "idle") return "idle timeout";
  const who = close.by === "peer" ? "closed by peer" : "closed locally";
  const what = close.isApplication
    ? `application error ${close.code}`
    : describeTransportError(close.code);
  return close.reason ? `${who}: ${what}: ${close.reason}` : `${who}: ${what}`;
}

/** A connection ended, before or after its handshake; `close` says how. */
export class ConnectionClosedError extends Error {
  /** How the connection ended. */
  readonly close: CloseReason;

  constructor(context: string, close: CloseReason) {
    super(`${context}: ${describeClose(close)}`);
    this.name = "ConnectionClosedError";
    this.close = close;
  }
}
