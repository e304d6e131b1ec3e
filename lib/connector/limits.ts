/**
 * What one connector process lets all its sessions use together: UDP flows (one socket
 * each) and TCP connections (one socket each once bridged), per session and in all, and the
 * memory of TCP receive windows. One `ConnectorLimits` is made by the Connector and shared by
 * every session's terminator and TCP stack. Refusals are counted and logged without letting a
 * peer flood the log (debug lines, a summary once a minute); running out of file descriptors
 * is a refusal like the others, with a warning at most once a minute.
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, type SocketAddress } from "../net/address.ts";
import { RefusalLog } from "../events/refusal_log.ts";
import { SharedTcpBudget } from "../tcp/mod.ts";

const log = getLogger(["ztna", "connector"]);

/** UDP flows (sockets) of all sessions at once, unless told otherwise. */
export const DEFAULT_MAX_UDP_FLOWS = 4_096;
/** UDP flows of one session at once, unless told otherwise. */
export const DEFAULT_MAX_UDP_FLOWS_PER_SESSION = 1_024;
/** TCP connections of all sessions at once (every state), unless told otherwise. */
export const DEFAULT_MAX_TCP_CONNECTIONS = 8_192;
/** TCP connections of one session at once, unless told otherwise. */
export const DEFAULT_MAX_TCP_CONNECTIONS_PER_SESSION = 1_024;
/** Receive-window memory of all bridged TCP connections, in MiB, unless told otherwise. */
export const DEFAULT_TCP_BUFFER_BUDGET_MIB = 64;
/** A UDP flow closes after this long without a datagram either way, unless told otherwise. */
export const DEFAULT_UDP_FLOW_IDLE_MS = 60_000;
/** Least time between two warnings that file descriptors ran out. */
const FD_WARNING_INTERVAL_MS = 60_000;
/** Descriptors the process needs besides flows and connections (runtime, node socket, logs). */
const FD_HEADROOM = 64;

/** Bounds of a connector process; every one is optional. */
export interface ConnectorLimitOptions {
  maxUdpFlows?: number;
  maxUdpFlowsPerSession?: number;
  maxTcpConnections?: number;
  maxTcpConnectionsPerSession?: number;
  /** Bytes of TCP receive windows and unread data across all connections. */
  tcpBufferBytes?: number;
  /** Idle time after which a UDP flow closes. */
  udpFlowIdleMs?: number;
}

/** Gauges and counters of the limits (totals since the start unless marked). */
export interface ConnectorLimitStats {
  /** Gauge: UDP flows open. */
  udpFlows: number;
  /** New UDP flows refused because their session had its most. */
  udpRefusedSession: number;
  /** New UDP flows refused because the process had its most. */
  udpRefusedProcess: number;
  /** Gauge: TCP connections tracked (every state). */
  tcpConnections: number;
  /** SYNs refused (RST) because their session had its most connections. */
  tcpRefusedSession: number;
  /** SYNs refused (RST) because the process had its most connections. */
  tcpRefusedProcess: number;
  /** SYNs refused (RST) because the buffer budget could not reserve a connection's floor. */
  tcpRefusedBuffer: number;
  /** The TCP buffer budget in bytes. */
  tcpBufferBudget: number;
  /** Gauge: bytes of the budget reserved (open windows, unread data). */
  tcpBufferInUse: number;
  /** Most bytes of the budget ever reserved at once. */
  tcpBufferPeak: number;
  /** Sockets not opened (flow refused, connection reset) because descriptors ran out. */
  fdExhausted: number;
  /** UDP sockets that failed to open for another reason. */
  udpOpenFailed: number;
  /** Connections to a forward target that failed for another reason (refused, unreachable). */
  tcpConnectFailed: number;
}

/** Why a socket could not be opened. */
export type OpenFailure = "fd-exhausted" | "udp-open-failed" | "tcp-connect-failed";

/** The limits of one connector process, shared by its sessions. */
export class ConnectorLimits {
  readonly maxUdpFlows: number;
  readonly maxUdpFlowsPerSession: number;
  readonly maxTcpConnections: number;
  readonly maxTcpConnectionsPerSession: number;
  readonly udpFlowIdleMs: number;
  /** Connection slots and receive memory of every session's TCP stack. */
  readonly tcp: SharedTcpBudget;
  readonly #counts = {
    udpFlows: 0,
    udpRefusedSession: 0,
    udpRefusedProcess: 0,
    tcpRefusedSession: 0,
    fdExhausted: 0,
    udpOpenFailed: 0,
    tcpConnectFailed: 0,
  };
  readonly #refusals = new RefusalLog(["ztna", "connector", "limits"]);
  #lastFdWarning = -Infinity;

  /** Applies defaults; a RangeError names a value that is not a positive integer. */
  constructor(options: ConnectorLimitOptions = {}) {
    const value = (name: keyof ConnectorLimitOptions, fallback: number) => {
      const n = options[name] ?? fallback;
      if (!Number.isSafeInteger(n) || n < 1) {
        throw new RangeError(`connector limit ${name} must be a positive integer, got ${n}`);
      }
      return n;
    };
    this.maxUdpFlows = value("maxUdpFlows", DEFAULT_MAX_UDP_FLOWS);
    this.maxUdpFlowsPerSession = value("maxUdpFlowsPerSession", DEFAULT_MAX_UDP_FLOWS_PER_SESSION);
    this.maxTcpConnectionsPerSession = value(
      "maxTcpConnectionsPerSession",
      DEFAULT_MAX_TCP_CONNECTIONS_PER_SESSION,
    );
    this.udpFlowIdleMs = value("udpFlowIdleMs", DEFAULT_UDP_FLOW_IDLE_MS);
    this.maxTcpConnections = value("maxTcpConnections", DEFAULT_MAX_TCP_CONNECTIONS);
    this.tcp = new SharedTcpBudget({
      maxConnections: this.maxTcpConnections,
      bytes: value("tcpBufferBytes", DEFAULT_TCP_BUFFER_BUDGET_MIB << 20),
    }, (why) =>
      this.#refusals.note(
        why === "connections" ? "tcp-process-limit" : "tcp-buffer-budget",
        "a new TCP connection",
        why === "connections"
          ? "the connector has its most TCP connections"
          : "the TCP buffer budget is spent",
      ));
  }

  /**
   * A session with `sessionFlows` flows wants a new one: true takes a process slot (give it
   * back with `udpFlowClosed`); false counts and logs the refusal.
   */
  admitUdpFlow(sessionFlows: number): boolean {
    const counts = this.#counts;
    if (sessionFlows >= this.maxUdpFlowsPerSession) {
      counts.udpRefusedSession++;
      this.#refusals.note("udp-session-limit", "a new UDP flow", "its session has its most flows");
      return false;
    }
    if (counts.udpFlows >= this.maxUdpFlows) {
      counts.udpRefusedProcess++;
      this.#refusals.note("udp-process-limit", "a new UDP flow", "the connector has its most");
      return false;
    }
    counts.udpFlows++;
    return true;
  }

  /** A flow `admitUdpFlow` admitted is closed (or its socket never opened). */
  udpFlowClosed(): void {
    this.#counts.udpFlows--;
  }

  /** A session tracking `sessionConnections` TCP connections got a SYN: whether to take it. */
  admitTcpConnection(sessionConnections: number): boolean {
    if (sessionConnections < this.maxTcpConnectionsPerSession) return true;
    this.#counts.tcpRefusedSession++;
    this.#refusals.note("tcp-session-limit", "a new TCP connection", "its session has its most");
    return false;
  }

  /**
   * Opening a socket to `target` failed with `error`: counted by kind (descriptors running
   * out, EMFILE/ENFILE, is its own kind and warned about at most once a minute).
   */
  openFailed(what: "udp" | "tcp", target: SocketAddress, error: unknown): OpenFailure {
    const code = errorCode(error);
    const kind: OpenFailure = code === "EMFILE" || code === "ENFILE"
      ? "fd-exhausted"
      : what === "udp"
      ? "udp-open-failed"
      : "tcp-connect-failed";
    const counts = this.#counts;
    if (kind === "fd-exhausted") counts.fdExhausted++;
    else if (kind === "udp-open-failed") counts.udpOpenFailed++;
    else counts.tcpConnectFailed++;
    const detail = `${what === "udp" ? "UDP socket for" : "TCP connection to"} ${
      formatAddress(target)
    }: ${String(error)}`;
    this.#refusals.note(kind, "a new flow", detail);
    const now = performance.now();
    if (kind === "fd-exhausted" && now - this.#lastFdWarning >= FD_WARNING_INTERVAL_MS) {
      this.#lastFdWarning = now;
      log.warn(
        "out of file descriptors ({code}): new UDP flows and TCP connections are refused until some close; raise the open-file limit or lower --max-udp-flows/--max-tcp-connections ({detail})",
        { code, detail },
      );
    }
    return kind;
  }

  /**
   * Warns if the open-file limit `limit` is below what the limits allow (a socket per UDP
   * flow and per bridged TCP connection, plus headroom): descriptors would run out first.
   */
  checkOpenFileLimit(limit: number | undefined): void {
    const needed = this.maxUdpFlows + this.maxTcpConnections + FD_HEADROOM;
    if (limit === undefined || limit >= needed) return;
    log.warn(
      "the open-file limit ({limit}) is below the {needed} descriptors the limits allow (--max-udp-flows {udp} + --max-tcp-connections {tcp} + {headroom}); past it new flows and connections are refused and counted as fdExhausted",
      {
        limit,
        needed,
        udp: this.maxUdpFlows,
        tcp: this.maxTcpConnections,
        headroom: FD_HEADROOM,
      },
    );
  }

  /** The gauges and counters now. */
  stats(): ConnectorLimitStats {
    const tcp = this.tcp.stats;
    return {
      udpFlows: this.#counts.udpFlows,
      udpRefusedSession: this.#counts.udpRefusedSession,
      udpRefusedProcess: this.#counts.udpRefusedProcess,
      tcpConnections: tcp.connections,
      tcpRefusedSession: this.#counts.tcpRefusedSession,
      tcpRefusedProcess: tcp.refusedConnections,
      tcpRefusedBuffer: tcp.refusedMemory,
      tcpBufferBudget: this.tcp.bytes,
      tcpBufferInUse: tcp.bytesInUse,
      tcpBufferPeak: tcp.bytesPeak,
      fdExhausted: this.#counts.fdExhausted,
      udpOpenFailed: this.#counts.udpOpenFailed,
      tcpConnectFailed: this.#counts.tcpConnectFailed,
    };
  }

  /** Logs the pending summary of refusals. */
  close(): void {
    this.#refusals.close();
  }
}

/** The `code` of an error Deno raised for a failed system call (e.g. "EMFILE"), if any. */
function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  return typeof error.code === "string" ? error.code : undefined;
}
