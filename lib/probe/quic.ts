/**
 * A QUIC service probe: connects to a server with full certificate
 * verification, waits until the handshake is done and the server kept the
 * connection, and reports what was negotiated (ALPN, RTT, path MTU, DATAGRAM
 * support) and the server's certificate. A server given by host name is
 * resolved and its addresses are tried in turn until one answers. Failures
 * are {@link ProbeError}s whose message says why, in one line.
 */
import { getLogger } from "@logtape/logtape";
import { familyOf, formatAddress, type SocketAddress } from "../net/address.ts";
import {
  formatHostPort,
  HostNotFoundError,
  type HostPort,
  isIpLiteral,
  resolveHostPort,
  type Resolver,
} from "../net/resolve.ts";
import { type CertificateSummary, describeCertificate } from "../pki/describe.ts";
import { QuicConfig } from "../quic/config.ts";
import type { Connection } from "../quic/connection.ts";
import { Endpoint } from "../quic/endpoint.ts";
import { type CloseReason, ConnectionClosedError, describeClose } from "../quic/errors.ts";

/** ALPN offered unless told otherwise: the protocol of ztna's own services. */
export const DEFAULT_PROBE_ALPN = "ztna";
/** Default limit on the whole probe. */
export const DEFAULT_PROBE_TIMEOUT_MS = 5_000;

const log = getLogger(["ztna", "probe"]);

/** What to probe and how. */
export interface QuicProbeOptions {
  /** The server: an IP address, or a host name whose addresses are tried in turn. */
  peer: HostPort;
  /** Resolves a host name (default: the system's resolver, /etc/hosts included). */
  resolver?: Resolver;
  /** Name the server's certificate must carry (also sent as SNI). */
  serverName: string;
  /** PEM file of the CA(s) trusted to sign the server's certificate. */
  caFile: string;
  /** ALPN protocol to offer. */
  alpn: string;
  /** PEM client certificate chain, for servers that require mutual TLS (with `keyFile`). */
  certificateFile?: string;
  /** PEM (PKCS#8) client private key (with `certificateFile`). */
  keyFile?: string;
  /** Limit on probing one address, handshake included. */
  timeoutMs: number;
}

/** What a successful probe found. */
export interface QuicProbeReport {
  /** The address probed, as given (a host name or an IP address, and the port). */
  target: string;
  /** The server name verified (and sent as SNI). */
  serverName: string;
  /** The local socket address used. */
  localAddress: string;
  /** The server's address on the active path. */
  peerAddress: string;
  /** Time from the first packet sent to the handshake's completion, in ms. */
  handshakeMs: number;
  /** Negotiated ALPN protocol. */
  alpn: string;
  /** Smoothed round-trip time of the active path, in ms. */
  smoothedRttMs: number;
  /** Minimum round-trip time seen on the active path, in ms. */
  minRttMs: number;
  /** Path MTU (largest UDP payload sent) of the active path, in bytes. */
  pathMtu: number;
  /** DATAGRAM support (RFC 9221): whether the server accepts them and the largest payload that fits. */
  datagrams: { supported: boolean; maxPayload: number };
  /** Whether a client certificate was presented (and accepted). */
  clientCertificate: boolean;
  /** The server's leaf certificate; null if it sent none. */
  peerCertificate: CertificateSummary | null;
}

/** A probe failed; the message says why. */
export class ProbeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProbeError";
  }
}

const TIMED_OUT = Symbol("timed out");

/** Settles like `promise`, or with TIMED_OUT at `deadline` (a `performance.now()` time). */
async function beforeDeadline<T>(
  promise: Promise<T>,
  deadline: number,
): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, deadline - performance.now()));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How long to watch for the server refusing the connection after our side of
 * the handshake completed. In TLS 1.3 the client finishes first; the server
 * checks the client's certificate after that, and a refusal (CONNECTION_CLOSE)
 * is only reported once the draining period (3 PTO) has passed. PTO is about
 * `srtt + 4 rttvar + max_ack_delay` with rttvar ≈ srtt / 2 after one sample.
 */
function confirmationWindowMs(srttMs: number): number {
  const pto = 3 * srttMs + 25;
  return srttMs + 3 * pto + 50;
}

const round = (value: number, digits = 3) => Number(value.toFixed(digits));

/** Advice for a refusal that operators commonly hit, as "; advice", or "". */
function hintFor(close: CloseReason, options: QuicProbeOptions): string {
  const alert = close.code - 0x100;
  if (close.isApplication || close.by === "idle" || alert < 0 || alert > 0xff) return "";
  let hint = "";
  if (close.by === "local") {
    if (alert === 48) hint = `the server's certificate is not signed by a CA in ${options.caFile}`;
    if (alert === 42 || alert === 46) {
      hint = `the server's certificate was refused: is it valid for "${options.serverName}"?`;
    }
    if (alert === 45) hint = "the server's certificate has expired";
  } else if (alert === 116) {
    hint = "the server requires a client certificate: give --cert and --key";
  } else if (alert === 120) {
    hint = `the server does not speak ALPN "${options.alpn}"`;
  } else if (
    options.certificateFile !== undefined && [42, 43, 44, 45, 46, 48, 49].includes(alert)
  ) {
    hint = "the server refused the client certificate";
  }
  return hint ? `; ${hint}` : "";
}

/**
 * Probes a QUIC server, trying each address of a host name in turn; resolves
 * with what the first to answer showed, or rejects with a {@link ProbeError}
 * (every address's failure, in one line).
 */
export async function probeQuic(options: QuicProbeOptions): Promise<QuicProbeReport> {
  const given = formatHostPort(options.peer);
  let addresses: SocketAddress[];
  try {
    addresses = await resolveHostPort(options.peer, options.resolver);
  } catch (error) {
    if (error instanceof HostNotFoundError) throw new ProbeError(`${given}: ${error.message}`);
    throw error;
  }
  const named = !isIpLiteral(options.peer.hostname);
  const failures: string[] = [];
  for (const address of addresses) {
    const label = named ? `${given} (${formatAddress(address)})` : given;
    try {
      return { ...await probeAddress(options, address, label), target: given };
    } catch (error) {
      if (!(error instanceof ProbeError)) throw error;
      failures.push(error.message);
      log.debug("{error}", { error: error.message });
    }
  }
  throw new ProbeError(failures.join("; "));
}

/** Probes one address of the server; `target` names it in messages. */
async function probeAddress(
  options: QuicProbeOptions,
  peer: SocketAddress,
  target: string,
): Promise<QuicProbeReport> {
  const config = new QuicConfig({
    alpn: [options.alpn],
    caFile: options.caFile,
    certificateChainFile: options.certificateFile,
    privateKeyFile: options.keyFile,
    verifyPeer: true,
    // Longer than the probe, so a silent server is reported as a timeout, not as idle.
    idleTimeoutMs: options.timeoutMs + 1_000,
  });
  let endpoint: Endpoint | undefined;
  try {
    const wildcard = familyOf(peer) === 6 ? "::" : "0.0.0.0";
    endpoint = Endpoint.bind({ address: { hostname: wildcard, port: 0 } });
    log.debug("probing {target} as {serverName} (ALPN {alpn}) from {local}", {
      target,
      serverName: options.serverName,
      alpn: options.alpn,
      local: formatAddress(endpoint.localAddress),
    });
    const started = performance.now();
    const deadline = started + options.timeoutMs;
    const connection = endpoint.connect({
      peer,
      serverName: options.serverName,
      config,
    });
    await handshake(connection, deadline, target, options);
    const handshakeMs = performance.now() - started;
    log.debug("handshake with {target} done in {ms} ms", { target, ms: round(handshakeMs) });
    await confirm(connection, deadline, target, options);

    const paths = connection.pathStats();
    const path = paths.find((p) => p.active) ?? paths[0];
    const maxPayload = connection.maxDatagramSize;
    const der = connection.peerCertificate;
    const report: QuicProbeReport = {
      target,
      serverName: options.serverName,
      localAddress: formatAddress(endpoint.localAddress),
      peerAddress: formatAddress(path?.peer ?? connection.initialPeer),
      handshakeMs: round(handshakeMs),
      alpn: connection.alpn,
      smoothedRttMs: round(path?.rttMs ?? 0),
      minRttMs: round(path?.minRttMs ?? 0),
      pathMtu: path?.pmtu ?? 0,
      datagrams: { supported: maxPayload > 0, maxPayload },
      clientCertificate: options.certificateFile !== undefined,
      peerCertificate: der ? await describeCertificate(der) : null,
    };
    connection.close(0, "ztna probe done");
    return report;
  } finally {
    await endpoint?.close();
    config.free();
  }
}

/** Waits for the handshake; a refusal or the deadline becomes a ProbeError. */
async function handshake(
  connection: Connection,
  deadline: number,
  target: string,
  options: QuicProbeOptions,
): Promise<void> {
  let outcome: void | typeof TIMED_OUT;
  try {
    outcome = await beforeDeadline(connection.established, deadline);
  } catch (error) {
    if (!(error instanceof ConnectionClosedError)) throw error;
    throw new ProbeError(`${target}: ${error.message}${hintFor(error.close, options)}`);
  }
  if (outcome !== TIMED_OUT) return;
  const answered = connection.stats().packetsReceived > 0;
  throw new ProbeError(
    `${target}: timed out after ${options.timeoutMs} ms waiting for the QUIC handshake ` +
      (answered
        ? "(the server answered but the handshake did not complete)"
        : "(no answer; is a QUIC server listening there?)"),
  );
}

/** Fails if the server closes the connection right after the handshake (e.g. refusing our certificate). */
async function confirm(
  connection: Connection,
  deadline: number,
  target: string,
  options: QuicProbeOptions,
): Promise<void> {
  const srtt = connection.pathStats()[0]?.rttMs ?? 0;
  const until = Math.min(deadline, performance.now() + confirmationWindowMs(srtt));
  const closed = await beforeDeadline(connection.closed, until);
  if (closed === TIMED_OUT) return;
  throw new ProbeError(
    `${target}: connection closed right after the handshake: ${describeClose(closed)}` +
      hintFor(closed, options),
  );
}

/** Renders a report as aligned text lines. */
export function formatQuicProbeReport(report: QuicProbeReport, now = new Date()): string {
  const row = (label: string, value: string, indent = 2) =>
    `${" ".repeat(indent)}${label.padEnd(22 - indent)}${value}`.trimEnd();
  const lines = [
    `QUIC probe of ${report.target} (server name ${report.serverName}): OK`,
    row("peer address", report.peerAddress),
    row("local address", report.localAddress),
    row("handshake", `${report.handshakeMs.toFixed(1)} ms`),
    row("ALPN", report.alpn),
    row("smoothed RTT", `${report.smoothedRttMs} ms (min ${report.minRttMs} ms)`),
    row("path MTU", `${report.pathMtu} bytes`),
    row(
      "DATAGRAMs",
      report.datagrams.supported
        ? `supported (max payload ${report.datagrams.maxPayload} bytes)`
        : "not supported by the server",
    ),
    row("client certificate", report.clientCertificate ? "presented, accepted" : "none"),
  ];
  const certificate = report.peerCertificate;
  if (!certificate) {
    lines.push(row("server certificate", "none"));
  } else {
    const days = Math.floor((Date.parse(certificate.notAfter) - now.getTime()) / 86_400_000);
    const expiry = days >= 0 ? `expires in ${days} days` : `expired ${-days} days ago`;
    lines.push(
      row("server certificate", ""),
      row("subject", certificate.subject, 4),
      row("issuer", certificate.issuer, 4),
      row("SANs", certificate.subjectAltNames.join(", ") || "none", 4),
      row("valid", `${certificate.notBefore} to ${certificate.notAfter} (${expiry})`, 4),
      row("serial", certificate.serialNumber, 4),
      row("SHA-256", certificate.sha256Fingerprint, 4),
    );
  }
  return lines.join("\n");
}
