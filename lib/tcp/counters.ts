/** A TCP stack's counters: monotonic totals plus a few gauges (marked). */
export interface TcpCounters {
  /** Handshakes completed (connections handed to `onConnection`). */
  connectionsAccepted: number;
  /** Gauge: connections past the handshake and not yet closed or in TIME_WAIT. */
  connectionsActive: number;
  /** Gauge: half-open connections (SYN received, SYN-ACK sent, handshake not complete). */
  connectionsHalfOpen: number;
  /** Connections ended by a RST: received from the peer, or sent by an abort or a timeout. */
  connectionsReset: number;
  /** Connections aborted because retransmissions or probes went unanswered. */
  connectionsTimedOut: number;
  /** Valid TCP segments received (after checksum verification). */
  segmentsIn: number;
  /** Segments handed to `send`. */
  segmentsOut: number;
  /** Segments sent again: RTO, fast retransmit, NewReno partial ACK, SYN-ACK. */
  retransmissions: number;
  /** Retransmission timer expirations (each resends from the first unacknowledged byte). */
  retransmissionTimeouts: number;
  /** Loss recoveries entered (fast retransmits): SACKs, RACK or three duplicate ACKs showed
   * a segment lost; the window is cut once per recovery. */
  fastRetransmits: number;
  /** Retransmissions found needless: the original's ACK came back sooner than one round
   * trip after the resend (reordering taken for loss; each widens RACK's window). */
  spuriousRetransmissions: number;
  /** Tail loss probes sent: no ACK for 2 SRTT with data in flight (RFC 8985 §7). */
  tailLossProbes: number;
  /** Data segments received ahead of a gap (buffered, or dropped when the buffer was full). */
  outOfOrder: number;
  /** Of those, segments dropped because the out-of-order buffer held its limit. */
  outOfOrderDropped: number;
  /** Packets that failed IP or TCP parsing (bad checksum, truncated, bad offsets, port 0). */
  droppedMalformed: number;
  /** IP packets that did not carry TCP. */
  droppedNotTcp: number;
  /** SYNs dropped because the SYN backlog or the connection limit was full, or refused. */
  synsDropped: number;
  /** RST segments sent (for unknown flows, refused SYNs, aborts, bad ACKs). */
  resetsSent: number;
  /** Calls to `send` that threw; the segment counts as lost. */
  sendFailures: number;
}

/** All counters at zero. */
export function zeroCounters(): TcpCounters {
  return {
    connectionsAccepted: 0,
    connectionsActive: 0,
    connectionsHalfOpen: 0,
    connectionsReset: 0,
    connectionsTimedOut: 0,
    segmentsIn: 0,
    segmentsOut: 0,
    retransmissions: 0,
    retransmissionTimeouts: 0,
    fastRetransmits: 0,
    tailLossProbes: 0,
    spuriousRetransmissions: 0,
    outOfOrder: 0,
    outOfOrderDropped: 0,
    droppedMalformed: 0,
    droppedNotTcp: 0,
    synsDropped: 0,
    resetsSent: 0,
    sendFailures: 0,
  };
}

/** Adds every counter of `from` to `into` (totals of stacks that ended, plus live ones). */
export function addCounters(into: TcpCounters, from: TcpCounters): void {
  for (const key of Object.keys(from) as (keyof TcpCounters)[]) into[key] += from[key];
}
