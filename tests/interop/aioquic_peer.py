#!/usr/bin/env python3
"""Independent QUIC interop peer built on aioquic (see README.md in this directory).

Modes:
  server  echo server: DATAGRAMs are sent back as DATAGRAMs, bidirectional
          streams are echoed and FIN'd once the peer's FIN arrives.
  client  sends DATAGRAMs and one bidirectional stream to an echo server and
          checks that everything comes back intact; prints one JSON line.

Only stdlib + aioquic. Diagnostics go to stderr; stdout carries only the
machine-readable lines ("READY <port>" for the server, one JSON object for
the client).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic import events
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicErrorCode
from aioquic import tls

MAX_DATAGRAM_FRAME_SIZE = 65536
# Worst-case overhead of a 1-RTT packet carrying a single DATAGRAM frame in
# aioquic's packet builder: short header (1 + 20-byte DCID + 2-byte packet
# number) + 16-byte AEAD tag + frame type (1) + 2-byte length varint.
DATAGRAM_OVERHEAD = 3 + 20 + 16 + 3


class AlertCertificateRequired(tls.Alert):
    description = tls.AlertDescription.certificate_required


def log(msg: str) -> None:
    print(f"[aioquic_peer {os.getpid()}] {msg}", file=sys.stderr, flush=True)


def parse_hostport(value: str) -> tuple[str, int]:
    """Accepts "HOST:PORT", "[IPV6]:PORT" and, unambiguously, "IPV6:PORT"
    (the part after the last colon is always the port)."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or value[end + 1 : end + 2] != ":":
            raise argparse.ArgumentTypeError(f"bad address {value!r}, want [HOST]:PORT")
        host, port = value[1:end], value[end + 2 :]
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise argparse.ArgumentTypeError(f"bad address {value!r}, want HOST:PORT")
    try:
        port_num = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {value!r}")
    if not 0 <= port_num <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {value!r}")
    return host, port_num


def describe_close(ev: events.ConnectionTerminated | None, local: bool | None) -> str:
    if ev is None:
        return "connection closed (no close event)"
    code = ev.error_code
    if QuicErrorCode.CRYPTO_ERROR <= code <= QuicErrorCode.CRYPTO_ERROR + 0xFF:
        alert = code - QuicErrorCode.CRYPTO_ERROR
        try:
            alert_name = tls.AlertDescription(alert).name
        except ValueError:
            alert_name = "unknown"
        code_desc = f"CRYPTO_ERROR/TLS alert {alert} {alert_name}"
    else:
        try:
            code_desc = QuicErrorCode(code).name
        except ValueError:
            code_desc = "application/unknown"
    who = {True: " by local endpoint", False: " by peer", None: ""}[local]
    frame = "" if ev.frame_type is None else f", frame_type=0x{ev.frame_type:x}"
    return (
        f"connection closed{who}: error_code=0x{code:x} ({code_desc}){frame}, "
        f"reason={ev.reason_phrase!r}"
    )


class TrackingProtocol(QuicConnectionProtocol):
    """Records who closed the connection and why."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.terminated: events.ConnectionTerminated | None = None
        self.closed_locally: bool | None = None
        orig_close = self._quic.close

        def close(*a: Any, **kw: Any) -> None:
            if self._quic._close_event is None and self.closed_locally is None:
                self.closed_locally = True
            orig_close(*a, **kw)

        self._quic.close = close  # type: ignore[method-assign]

    def close_reason(self) -> str:
        # The ConnectionTerminated event is only delivered after the closing
        # period (3 PTO); the pending close event is available immediately.
        ev = self.terminated or self._quic._close_event
        local = self.closed_locally
        if ev is not None and local is None:
            local = False
        return describe_close(ev, local)

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.ConnectionTerminated):
            self.terminated = event
        super().quic_event_received(event)


# --------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------


class EchoServerProtocol(TrackingProtocol):
    ca_file: str | None = None
    require_client_cert: bool = False
    max_echo_datagram: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._peer = "?"
        if self.ca_file is not None:
            orig_initialize = self._quic._initialize

            def initialize(peer_cid: bytes) -> None:
                orig_initialize(peer_cid)
                self._enable_client_auth(self._quic.tls)

            self._quic._initialize = initialize  # type: ignore[method-assign]

    def _enable_client_auth(self, ctx: tls.Context) -> None:
        # aioquic's server can send a CertificateRequest but never validates
        # the client certificate chain itself; hook the two TLS handlers.
        ctx._request_client_certificate = True
        orig_cert = ctx._server_handle_certificate
        orig_verify = ctx._server_handle_certificate_verify
        ca_file = self.ca_file
        require = self.require_client_cert

        def handle_certificate(buf: Any) -> None:
            orig_cert(buf)
            if ctx._peer_certificate is None and require:
                raise AlertCertificateRequired("client certificate required")

        def handle_certificate_verify(buf: Any) -> None:
            orig_verify(buf)  # checks the CertificateVerify signature
            tls.verify_certificate(
                certificate=ctx._peer_certificate,
                chain=ctx._peer_certificate_chain,
                cafile=ca_file,
            )

        ctx._server_handle_certificate = handle_certificate  # type: ignore
        ctx._server_handle_certificate_verify = handle_certificate_verify  # type: ignore

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self._peer = addr
        super().datagram_received(data, addr)

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.HandshakeCompleted):
            peer_cert = getattr(self._quic.tls, "_peer_certificate", None)
            log(
                f"handshake completed with {self._peer}: alpn={event.alpn_protocol!r} "
                f"client_cert={peer_cert.subject.rfc4514_string() if peer_cert else None}"
            )
        elif isinstance(event, events.DatagramFrameReceived):
            if len(event.data) <= self.max_echo_datagram:
                self._quic.send_datagram_frame(event.data)
            else:
                # aioquic would wedge its DATAGRAM queue on a frame that can
                # never fit into one packet, so drop it instead.
                log(f"dropping DATAGRAM of {len(event.data)} bytes (> {self.max_echo_datagram})")
            return
        elif isinstance(event, events.StreamDataReceived):
            sid = event.stream_id
            if sid & 0x2 == 0 and sid & 0x1 == 0:  # client-initiated bidirectional
                self._quic.send_stream_data(sid, event.data, end_stream=event.end_stream)
            return
        elif isinstance(event, events.StreamReset):
            sid = event.stream_id
            if sid & 0x3 == 0:
                try:
                    self._quic.reset_stream(sid, event.error_code)
                except Exception:  # already finished
                    pass
            return
        elif isinstance(event, events.ConnectionTerminated):
            log(f"connection with {self._peer} ended: {describe_close(event, self.closed_locally or False)}")
        super().quic_event_received(event)


async def run_server(args: argparse.Namespace) -> int:
    host, port = args.listen
    config = QuicConfiguration(
        is_client=False,
        alpn_protocols=args.alpn,
        max_datagram_frame_size=MAX_DATAGRAM_FRAME_SIZE,
        max_datagram_size=args.max_udp_payload,
        idle_timeout=args.idle_timeout,
    )
    config.load_cert_chain(args.cert, args.key)
    if args.ca:
        check_pem_certs(args.ca, "--ca")
    if os.environ.get("SSLKEYLOGFILE"):
        config.secrets_log_file = open(os.environ["SSLKEYLOGFILE"], "a")

    EchoServerProtocol.ca_file = args.ca
    EchoServerProtocol.require_client_cert = args.require_client_cert
    EchoServerProtocol.max_echo_datagram = args.max_udp_payload - DATAGRAM_OVERHEAD

    server = await serve(
        host,
        port,
        configuration=config,
        create_protocol=EchoServerProtocol,
        retry=args.retry,
    )
    sockname = server._transport.get_extra_info("sockname")
    log(f"listening on {sockname} alpn={args.alpn} retry={args.retry} "
        f"client_auth={'required' if args.require_client_cert else ('optional' if args.ca else 'off')}")
    print(f"READY {sockname[1]}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log("signal received, shutting down")
    server.close()
    await asyncio.sleep(0)  # let pending CONNECTION_CLOSE datagrams go out
    return 0


# --------------------------------------------------------------------------
# client
# --------------------------------------------------------------------------


class ClientProtocol(TrackingProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datagrams: set[bytes] = set()
        self.datagram_event = asyncio.Event()
        self.stream_resets: dict[int, int] = {}

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.DatagramFrameReceived):
            self.datagrams.add(event.data)
            self.datagram_event.set()
            return
        if isinstance(event, events.StreamReset):
            self.stream_resets[event.stream_id] = event.error_code
            reader = self._stream_readers.get(event.stream_id)
            if reader is not None:
                reader.feed_eof()
        if isinstance(event, events.ConnectionTerminated):
            self.datagram_event.set()
        super().quic_event_received(event)


def datagram_payload(i: int, size: int) -> bytes:
    head = b"dgram-%d|" % i
    filler = hashlib.sha256(head).digest() * (size // 32 + 1)
    return (head + filler)[: max(size, len(head))]


def stream_payload(n: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(b"ztna-interop-stream" + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:n])


class ClientFailure(Exception):
    pass


def check_pem_certs(path: str, flag: str) -> None:
    # aioquic only reads the CA file in the middle of the handshake, where a
    # bad file surfaces as an unhandled exception; fail early instead.
    try:
        with open(path, "rb") as fp:
            certs = tls.load_pem_x509_certificates(fp.read())
    except (OSError, ValueError) as exc:
        raise ClientFailure(f"cannot load {flag} {path}: {exc}")
    if not certs:
        raise ClientFailure(f"no PEM certificate in {flag} {path}")


async def run_client_inner(args: argparse.Namespace, state: dict[str, Any]) -> dict[str, Any]:
    host, port = args.connect
    loop = asyncio.get_running_loop()

    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=args.alpn,
        server_name=args.server_name or host,
        max_datagram_frame_size=MAX_DATAGRAM_FRAME_SIZE,
        max_datagram_size=args.max_udp_payload,
    )
    check_pem_certs(args.ca, "--ca")
    config.load_verify_locations(cafile=args.ca)
    if args.cert:
        config.load_cert_chain(args.cert, args.key)
    if os.environ.get("SSLKEYLOGFILE"):
        config.secrets_log_file = open(os.environ["SSLKEYLOGFILE"], "a")

    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    addr = infos[0][4]
    if len(addr) == 2:
        addr = ("::ffff:" + addr[0], addr[1], 0, 0)

    connection = QuicConnection(configuration=config)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", 0, 0, 0))
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: ClientProtocol(connection), sock=sock
    )
    state["transport"] = transport
    state["protocol"] = protocol
    assert isinstance(protocol, ClientProtocol)

    state["phase"] = "handshake"
    protocol.connect(addr)
    try:
        await protocol.wait_connected()
    except ConnectionError:
        raise ClientFailure(f"handshake failed: {protocol.close_reason()}")
    # A TLS 1.3 client is "connected" once it has sent its Finished, before
    # the server has checked that flight (e.g. the client certificate). Wait
    # for HANDSHAKE_DONE so that a rejection still counts as a handshake error.
    while not connection._handshake_confirmed:
        if connection._close_event is not None:
            raise ClientFailure(f"handshake failed: {protocol.close_reason()}")
        await asyncio.sleep(0.01)
    alpn = connection.tls.alpn_negotiated
    log(f"connected to {args.connect} alpn={alpn!r}")
    if connection._remote_max_datagram_frame_size is None:
        raise ClientFailure("server did not advertise max_datagram_frame_size (DATAGRAM unsupported)")

    # ---- datagrams
    state["phase"] = "datagrams"
    payloads = [datagram_payload(i, args.datagram_size) for i in range(args.datagram_count)]
    last_sent: dict[bytes, float] = {}
    resends = 0
    while True:
        missing = [p for p in payloads if p not in protocol.datagrams]
        if not missing:
            break
        if protocol.terminated is not None or connection._close_event is not None:
            raise ClientFailure(f"during datagram phase: {protocol.close_reason()}")
        now = time.monotonic()
        for p in missing:
            if now - last_sent.get(p, -1e9) >= args.datagram_retransmit:
                if p in last_sent:
                    resends += 1
                connection.send_datagram_frame(p)
                last_sent[p] = now
        protocol.transmit()
        protocol.datagram_event.clear()
        try:
            await asyncio.wait_for(protocol.datagram_event.wait(), args.datagram_retransmit / 4)
        except asyncio.TimeoutError:
            pass
    unexpected = protocol.datagrams - set(payloads)
    if unexpected:
        raise ClientFailure(f"received {len(unexpected)} DATAGRAM(s) that were never sent")
    state["datagrams_echoed"] = len(payloads)

    # ---- stream
    state["phase"] = "stream"
    data = stream_payload(args.stream_bytes)
    sent_digest = hashlib.sha256(data).hexdigest()
    reader, writer = await protocol.create_stream()
    stream_id = writer.get_extra_info("stream_id")
    writer.write(data)
    writer.write_eof()
    echoed = await reader.read()
    if stream_id in protocol.stream_resets:
        raise ClientFailure(
            f"stream {stream_id} reset by peer with code {protocol.stream_resets[stream_id]}"
        )
    if protocol.terminated is not None or (
        len(echoed) != len(data) and connection._close_event is not None
    ):
        raise ClientFailure(
            f"during stream phase after {len(echoed)} echoed bytes: {protocol.close_reason()}"
        )
    got_digest = hashlib.sha256(echoed).hexdigest()
    if len(echoed) != len(data) or got_digest != sent_digest:
        raise ClientFailure(
            f"stream echo mismatch: sent {len(data)} bytes sha256={sent_digest}, "
            f"got {len(echoed)} bytes sha256={got_digest}"
        )

    return {
        "ok": True,
        "alpn": alpn,
        "datagrams_echoed": len(payloads),
        "datagram_resends": resends,
        "stream_bytes": len(echoed),
        "stream_sha256": got_digest,
    }


async def run_client(args: argparse.Namespace) -> int:
    state: dict[str, Any] = {"phase": "setup"}
    try:
        result = await asyncio.wait_for(run_client_inner(args, state), args.timeout)
    except asyncio.TimeoutError:
        protocol = state.get("protocol")
        detail = ""
        if protocol is not None and (
            protocol.terminated is not None or protocol._quic._close_event is not None
        ):
            detail = f"; {protocol.close_reason()}"
        phase = state["phase"]
        if phase == "handshake" and not detail:
            detail = " (handshake never completed: no answer from the server)"
        if phase == "datagrams" and protocol is not None:
            detail += f"; {len(protocol.datagrams)}/{args.datagram_count} datagrams echoed"
        result = {"ok": False, "error": f"timeout after {args.timeout}s in {phase} phase{detail}"}
    except ClientFailure as exc:
        result = {"ok": False, "error": str(exc)}
    except Exception as exc:  # setup errors: bad files, DNS, ...
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    protocol = state.get("protocol")
    if protocol is not None:
        waiter = protocol._connected_waiter
        if waiter is not None:  # avoid "Future exception was never retrieved"
            waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        protocol.close()  # sends CONNECTION_CLOSE right away (no-op if already closing)
        try:
            await asyncio.wait_for(protocol.wait_closed(), 0.5)
        except asyncio.TimeoutError:
            pass
    if state.get("transport") is not None:
        state["transport"].close()

    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


# --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)

    s = sub.add_parser("server", help="DATAGRAM + stream echo server")
    s.add_argument("--listen", required=True, type=parse_hostport,
                   help="HOST:PORT, [IPV6]:PORT; port 0 picks a free port (see READY line)")
    s.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    s.add_argument("--key", required=True, help="server private key (PEM)")
    s.add_argument("--alpn", required=True, action="append", help="ALPN to accept (repeatable)")
    s.add_argument("--ca", help="CA (PEM) for client certificates; requests and verifies a client cert")
    s.add_argument("--require-client-cert", action="store_true",
                   help="reject clients without a certificate (needs --ca)")
    s.add_argument("--retry", action="store_true", help="validate client address with a Retry packet")
    s.add_argument("--idle-timeout", type=float, default=60.0)
    s.add_argument("--max-udp-payload", type=int, default=SMALLEST_MAX_DATAGRAM_SIZE,
                   help="max UDP payload aioquic sends (default 1200)")

    c = sub.add_parser("client", help="DATAGRAM + stream echo client")
    c.add_argument("--connect", required=True, type=parse_hostport, help="HOST:PORT or [IPV6]:PORT")
    c.add_argument("--ca", required=True, help="CA (PEM) to verify the server certificate")
    c.add_argument("--server-name", help="name to verify/send as SNI (default: HOST)")
    c.add_argument("--alpn", required=True, action="append", help="ALPN to offer (repeatable)")
    c.add_argument("--cert", help="client certificate chain (PEM)")
    c.add_argument("--key", help="client private key (PEM)")
    c.add_argument("--datagram-count", type=int, default=10)
    c.add_argument("--datagram-size", type=int, default=300)
    c.add_argument("--datagram-retransmit", type=float, default=0.2, help="seconds")
    c.add_argument("--stream-bytes", type=int, default=100000)
    c.add_argument("--timeout", type=float, default=10.0, help="overall timeout, seconds")
    c.add_argument("--max-udp-payload", type=int, default=SMALLEST_MAX_DATAGRAM_SIZE,
                   help="max UDP payload aioquic sends (default 1200)")

    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="[aioquic %(name)s] %(message)s")
    if args.mode == "server":
        if args.require_client_cert and not args.ca:
            parser.error("--require-client-cert needs --ca")
        try:
            return asyncio.run(run_server(args))
        except (ClientFailure, OSError, ValueError) as exc:
            log(f"server failed to start: {type(exc).__name__}: {exc}")
            return 2
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    if args.datagram_size > args.max_udp_payload - DATAGRAM_OVERHEAD:
        parser.error(f"--datagram-size must be <= {args.max_udp_payload - DATAGRAM_OVERHEAD}")
    return asyncio.run(run_client(args))


if __name__ == "__main__":
    sys.exit(main())
