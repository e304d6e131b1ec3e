/** What a NAT check reports: the classification, the addresses seen, and each test's record. */
import type { SocketAddress } from "../net/address.ts";
import type { NatClassification, NatTestName } from "../stun/mod.ts";

/** One request of the check and what it got. */
export interface NatTestRecord {
  /** The RFC 5780 test (see lib/stun's NatObservations), or the hairpinning test. */
  test: NatTestName | "hairpinning";
  /** The socket it left from: the endpoint's ("mapping") or the second one ("filtering"). */
  socket: "mapping" | "filtering";
  /** Where it went. */
  destination: SocketAddress;
  /** CHANGE-REQUEST flags sent. */
  changeIp: boolean;
  changePort: boolean;
  /** Transmissions made (retransmissions included). */
  transmissions: number;
  /**
   * A success response ("answered"), an error response ("error"), nothing ("no-answer"); for
   * the hairpinning test, "answered" means our request came back to the mapping socket.
   */
  outcome: "answered" | "error" | "no-answer";
  /** The source of the answer. */
  from?: SocketAddress;
  /** The XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS) of a success response. */
  mapped?: SocketAddress;
  /** The error of an error response. */
  error?: { code: number; reason?: string };
  /** Milliseconds from the first transmission to the answer. */
  elapsedMs?: number;
}

/** The result of a NAT check. */
export interface NatCheckResult {
  /** The STUN server asked (its primary address). */
  server: SocketAddress;
  /** Whether it answered test I at all (false: it is down, filtered, or has STUN off). */
  serverAnswered: boolean;
  /** Test I's OTHER-ADDRESS: absent when the server has no alternate address or port. */
  otherAddress?: SocketAddress;
  /** Mapping, filtering, the classic name, hairpinning and the evidence lines. */
  classification: NatClassification;
  /**
   * Every distinct address the server saw the endpoint's socket at, test I's first (several
   * behind a NAT whose mapping depends on the destination).
   */
  publicAddresses: SocketAddress[];
  /** The mapping socket's source addresses (what "no NAT" is judged against). */
  localAddresses: SocketAddress[];
  /**
   * The filtering tests' socket: one the check bound ("fresh"), the caller's ("given"), or
   * none ("none": filtering not tested, so undetermined).
   */
  filteringSocket: "fresh" | "given" | "none";
  /** Every request made, in the order they finished. */
  tests: NatTestRecord[];
  /** Wall time of the check. */
  durationMs: number;
}
