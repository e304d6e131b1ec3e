/** lib/quic/errors.ts: names for quiche error codes, QUIC transport codes, TLS alerts and closes. */
import assert from "node:assert/strict";
import {
  type CloseReason,
  ConnectionClosedError,
  describeClose,
  describeTransportError,
  QuicheError,
} from "../lib/quic/errors.ts";

Deno.test("describeTransportError: TLS alerts are 0x100 + alert", () => {
  assert.equal(describeTransportError(0x100 + 48), "TLS alert 48 (unknown CA)");
  assert.equal(describeTransportError(0x130), "TLS alert 48 (unknown CA)");
  assert.equal(describeTransportError(0x100 + 42), "TLS alert 42 (bad certificate)");
  assert.equal(describeTransportError(0x100 + 40), "TLS alert 40 (handshake failure)");
  assert.equal(describeTransportError(0x100 + 45), "TLS alert 45 (certificate expired)");
  assert.equal(describeTransportError(0x100 + 116), "TLS alert 116 (certificate required)");
  assert.equal(describeTransportError(0x100 + 120), "TLS alert 120 (no application protocol)");
  assert.equal(describeTransportError(0x100), "TLS alert 0 (close notify)");
  // Alerts without a name, at both ends of the range.
  assert.equal(describeTransportError(0x100 + 1), "TLS alert 1 (unknown)");
  assert.equal(describeTransportError(0x1ff), "TLS alert 255 (unknown)");
});

Deno.test("describeTransportError: RFC 9000 transport codes", () => {
  const expected: [number, string][] = [
    [0x0, "no error"],
    [0x1, "internal error"],
    [0x2, "connection refused"],
    [0x3, "flow control error"],
    [0x4, "stream limit error"],
    [0x5, "stream state error"],
    [0x6, "final size error"],
    [0x7, "frame encoding error"],
    [0x8, "transport parameter error"],
    [0x9, "connection ID limit error"],
    [0xa, "protocol violation"],
    [0xb, "invalid token"],
    [0xc, "application error"],
    [0xd, "crypto buffer exceeded"],
    [0xe, "key update error"],
    [0xf, "AEAD limit reached"],
    [0x10, "no viable path"],
  ];
  for (const [code, text] of expected) assert.equal(describeTransportError(code), text);
});

Deno.test("describeTransportError: other codes are shown in hex", () => {
  assert.equal(describeTransportError(0x11), "transport error 0x11");
  assert.equal(describeTransportError(0xff), "transport error 0xff");
  assert.equal(describeTransportError(0x200), "transport error 0x200");
  assert.equal(describeTransportError(0x4752), "transport error 0x4752");
  // Codes past 32 bits (QUIC varints reach 2^62 - 1) render in hex too.
  assert.equal(describeTransportError(2 ** 40), "transport error 0x10000000000");
});

Deno.test("describeClose: idle, peer and local, transport and application, with and without reason", () => {
  const close = (over: Partial<CloseReason>): CloseReason => ({
    by: "peer",
    isApplication: false,
    code: 0,
    reason: "",
    ...over,
  });
  assert.equal(describeClose(close({ by: "idle" })), "idle timeout");
  // An idle timeout ignores code and reason.
  assert.equal(describeClose(close({ by: "idle", code: 5, reason: "x" })), "idle timeout");
  assert.equal(describeClose(close({ by: "peer" })), "closed by peer: no error");
  assert.equal(
    describeClose(close({ by: "peer", code: 0x100 + 48 })),
    "closed by peer: TLS alert 48 (unknown CA)",
  );
  assert.equal(
    describeClose(close({ by: "local", code: 0xa, reason: "bad frame" })),
    "closed locally: protocol violation: bad frame",
  );
  assert.equal(
    describeClose(close({ by: "peer", isApplication: true, code: 7, reason: "bye" })),
    "closed by peer: application error 7: bye",
  );
  // Application codes are not transport codes: 0x1 is not "internal error", 0x130 not an alert.
  assert.equal(
    describeClose(close({ by: "local", isApplication: true, code: 0x130 })),
    "closed locally: application error 304",
  );
  assert.equal(
    describeClose(close({ by: "local", isApplication: true, code: 1 })),
    "closed locally: application error 1",
  );
});

Deno.test("QuicheError names the code and the failed operation", () => {
  const error = new QuicheError("quiche_conn_new", -10);
  assert.ok(error instanceof Error);
  assert.ok(error instanceof QuicheError);
  assert.equal(error.name, "QuicheError");
  assert.equal(error.code, -10);
  assert.equal(error.codeName, "TlsFail");
  assert.equal(error.message, "quiche_conn_new failed: TlsFail");
  assert.equal(String(error), "QuicheError: quiche_conn_new failed: TlsFail");
  const names: [number, string][] = [
    [-1, "Done"],
    [-2, "BufferTooShort"],
    [-3, "UnknownVersion"],
    [-5, "InvalidPacket"],
    [-9, "CryptoFail"],
    [-11, "FlowControl"],
    [-15, "StreamStopped"],
    [-16, "StreamReset"],
    [-23, "InvalidDcidInitialization"],
  ];
  for (const [code, name] of names) {
    const e = new QuicheError("op", code);
    assert.equal(e.codeName, name);
    assert.equal(e.message, `op failed: ${name}`);
  }
});

Deno.test("QuicheError: unknown codes", () => {
  const error = new QuicheError("quiche_conn_send", -99);
  assert.equal(error.codeName, "Unknown(-99)");
  assert.equal(error.message, "quiche_conn_send failed: Unknown(-99)");
  assert.equal(new QuicheError("x", 0).codeName, "Unknown(0)");
  assert.equal(new QuicheError("x", -24).codeName, "Unknown(-24)");
});

Deno.test("ConnectionClosedError carries the close and describes it", () => {
  const close: CloseReason = { by: "peer", isApplication: false, code: 0x12a, reason: "" };
  const error = new ConnectionClosedError("handshake with 127.0.0.1:4433", close);
  assert.ok(error instanceof Error);
  assert.equal(error.name, "ConnectionClosedError");
  assert.equal(error.close, close);
  assert.equal(
    error.message,
    "handshake with 127.0.0.1:4433: closed by peer: TLS alert 42 (bad certificate)",
  );
  const idle = new ConnectionClosedError("stream read", {
    by: "idle",
    isApplication: false,
    code: 0,
    reason: "",
  });
  assert.equal(idle.message, "stream read: idle timeout");
});
