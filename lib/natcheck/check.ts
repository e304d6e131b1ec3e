/**
 * NAT-behaviour discovery (RFC 5780) from a ztna Endpoint's own socket, against a STUN server
 * with an alternate address (the relay, or any RFC 5780 server): the mapping and filtering of
 * the NAT in front of that socket in RFC 4787 terms, the classic name, the public address(es)
 * and hairpinning. See `checkNat`.
 */
import { familyOf, formatAddress, type SocketAddress } from "../net/address.ts";
import { UdpSocket } from "../net/udp_socket.ts";
import type { Endpoint } from "../quic/endpoint.ts";
import {
  bindingRequest,
  classifyNat,
  encodeStunMessage,
  getAttribute,
  mappedAddressOf,
  type NatObservations,
  planNatTests,
  type PlannedRequest,
  sameSocketAddress,
  type StunAttribute,
} from "../stun/mod.ts";
import { NatCheckError } from "./errors.ts";
import { sourceAddresses } from "./local_addresses.ts";
import type { NatCheckResult, NatTestRecord } from "./result.ts";
import {
  DEFAULT_MIN_RTO_MS,
  DEFAULT_TIMEOUT_MS,
  firstTestSchedule,
  laterTestSchedule,
} from "./schedule.ts";
import { type RetransmitSchedule, StunClient } from "./stun_client.ts";
import { endpointTransport, socketTransport, type StunTransport } from "./transport.ts";

/** How to run a check. */
export interface NatCheckOptions {
  /** The STUN server: the relay's QUIC address (STUN shares its port), or any RFC 5780 server. */
  server: SocketAddress;
  /**
   * The socket for the filtering tests, which must never have sent to the server's alternate
   * address (a socket that has opened the NAT's filter to it sees every filter as open):
   * - "bind" (default): the check binds a fresh UDP socket on the endpoint's IP, port 0, and
   *   closes it; the NAT's filtering is a property of the NAT, so what it shows holds for the
   *   endpoint's mapping too;
   * - a UdpSocket: the caller's fresh socket (bound, receive loop not started); the check
   *   starts its receive loop and closes it;
   * - "skip": mapping only; filtering is reported undetermined.
   */
  filtering?: "bind" | "skip" | UdpSocket;
  /** Test hairpinning (a request to our own public address must come back); default true. */
  hairpinning?: boolean;
  /** How long test I may take before the server counts as not answering (default 3000 ms). */
  timeoutMs?: number;
  /** The smallest retransmission timeout (default 100 ms). */
  minRtoMs?: number;
  /** Aborts the check: it rejects with a NatCheckError ("aborted"). */
  signal?: AbortSignal;
}

/** Bytes of PADDING IPv6 requests carry, so the answer's three addresses fit in 3x the request. */
const IPV6_PADDING = 8;

/**
 * Runs RFC 5780's tests from `endpoint`'s socket (STUN beside its QUIC traffic: the check
 * holds the endpoint's 0x00/0x01 datagram handler while it runs) against `options.server`.
 * Order: test I from the endpoint's socket; then the two filtering tests (CHANGE-REQUEST, from
 * the fresh second socket, to the primary address only) and hairpinning; then mapping tests
 * II and III from the endpoint's socket (III only if II saw another address than I). Filtering
 * goes before the mapping tests contact the alternate address, so no NAT state they leave can
 * open a filter. Retransmissions follow RFC 8489's shape with timeouts from test I's round
 * trip (see schedule.ts): about a second on a LAN when some filter blocks, milliseconds when
 * none does. Resolves with the result whatever the NAT or server did (`serverAnswered` false
 * if test I got nothing); rejects with a NatCheckError only when the check cannot run (bad
 * options, the endpoint's STUN bytes taken, a socket that cannot be bound, aborted).
 */
export async function checkNat(
  endpoint: Endpoint,
  options: NatCheckOptions,
): Promise<NatCheckResult> {
  const started = performance.now();
  const { server } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const minRtoMs = options.minRtoMs ?? DEFAULT_MIN_RTO_MS;
  checkOptions(endpoint, server, timeoutMs, minRtoMs);
  if (options.signal?.aborted) throw aborted(options.signal);
  const client = new StunClient();
  const mapping = endpointTransport(endpoint, client.receiver("mapping"));
  let filtering: StunTransport | undefined;
  const onAbort = () => client.close();
  options.signal?.addEventListener("abort", onAbort);
  try {
    const choice = options.filtering ?? "bind";
    if (choice !== "skip") {
      filtering = socketTransport(
        choice === "bind" ? bindSecond(endpoint) : choice,
        client.receiver("filtering"),
      );
    }
    const run = new CheckRun(client, mapping, filtering, server, minRtoMs);
    const result = await run.run(timeoutMs, options.hairpinning ?? true);
    if (options.signal?.aborted) throw aborted(options.signal);
    return {
      ...result,
      filteringSocket: choice === "skip" ? "none" : choice === "bind" ? "fresh" : "given",
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    client.close();
    await mapping.close();
    await filtering?.close();
    if (!filtering && options.filtering instanceof UdpSocket) await options.filtering.close();
  }
}

function checkOptions(
  endpoint: Endpoint,
  server: SocketAddress,
  timeoutMs: number,
  minRtoMs: number,
) {
  for (const [name, value] of [["timeoutMs", timeoutMs], ["minRtoMs", minRtoMs]] as const) {
    if (!Number.isFinite(value) || value <= 0) {
      throw new NatCheckError("bad-options", `${name} must be a positive number, not ${value}`);
    }
  }
  let family: 4 | 6;
  try {
    family = familyOf(server);
  } catch {
    throw new NatCheckError("bad-options", `server "${server.hostname}" is not an IP address`);
  }
  if (!Number.isInteger(server.port) || server.port < 1 || server.port > 65535) {
    throw new NatCheckError("bad-options", `server port ${server.port} is not 1-65535`);
  }
  if (family === 6 && endpoint.family === 4) {
    throw new NatCheckError(
      "bad-options",
      `cannot reach the IPv6 server ${formatAddress(server)} from the IPv4 socket ` +
        formatAddress(endpoint.localAddress),
    );
  }
}

function aborted(signal: AbortSignal): NatCheckError {
  return new NatCheckError("aborted", "the NAT check was aborted", { cause: signal.reason });
}

/** A fresh socket on the endpoint's IP (the same interface, so the same NAT). */
function bindSecond(endpoint: Endpoint): UdpSocket {
  const address = { hostname: endpoint.localAddress.hostname, port: 0 };
  try {
    return UdpSocket.bind(address);
  } catch (error) {
    throw new NatCheckError(
      "bind-failed",
      `cannot bind the filtering tests' socket on ${formatAddress(address)}: ` +
        (error as Error).message,
      { cause: error },
    );
  }
}

/** The state of one check: the sockets, the observations and the records. */
class CheckRun {
  readonly #client: StunClient;
  readonly #mapping: StunTransport;
  readonly #filtering: StunTransport | undefined;
  readonly #server: SocketAddress;
  readonly #minRtoMs: number;
  readonly #tests: NatTestRecord[] = [];
  readonly #local: SocketAddress[];

  constructor(
    client: StunClient,
    mapping: StunTransport,
    filtering: StunTransport | undefined,
    server: SocketAddress,
    minRtoMs: number,
  ) {
    this.#client = client;
    this.#mapping = mapping;
    this.#filtering = filtering;
    this.#server = server;
    this.#minRtoMs = minRtoMs;
    this.#local = sourceAddresses(mapping.localAddress);
  }

  async run(
    timeoutMs: number,
    hairpinning: boolean,
  ): Promise<Omit<NatCheckResult, "filteringSocket" | "durationMs">> {
    const first = planNatTests(this.#server)[0];
    const testI = await this.#request(first, firstTestSchedule(this.#minRtoMs, timeoutMs));
    const observations: NatObservations = {
      localAddresses: this.#local,
      primary: this.#server,
      testI: dropFrom(testI.answer),
    };
    if (testI.answer.outcome === "mapped") {
      observations.otherAddress = testI.otherAddress;
      await this.#later(observations, testI.answer.mapped, testI.rttMs, hairpinning);
    }
    const classification = classifyNat(observations);
    if (!this.#filtering && classification.filtering.behavior === "undetermined") {
      const reason = 'not tested: the check had no second socket (filtering: "skip")';
      classification.filtering = { ...classification.filtering, reason };
      classification.evidence.push(`filtering: ${reason}`);
    }
    const publicAddresses: SocketAddress[] = [];
    for (const record of this.#tests) {
      if (record.socket !== "mapping" || !record.mapped) continue;
      if (!publicAddresses.some((a) => sameSocketAddress(a, record.mapped!))) {
        publicAddresses.push(record.mapped);
      }
    }
    return {
      server: this.#server,
      serverAnswered: testI.answer.outcome !== "no-answer",
      otherAddress: observations.otherAddress,
      classification,
      publicAddresses,
      localAddresses: this.#local,
      tests: this.#tests,
    };
  }

  /** Everything after test I, in the order `checkNat`'s doc gives. */
  async #later(
    o: NatObservations,
    mapped: SocketAddress,
    rttMs: number | undefined,
    hairpinning: boolean,
  ): Promise<void> {
    const schedule = laterTestSchedule(rttMs, this.#minRtoMs);
    const plan = planNatTests(this.#server, o.otherAddress).slice(1);
    const behindNat = !this.#local.some((local) => sameSocketAddress(local, mapped));
    const filteringTests = this.#filtering
      ? plan.filter((p) => p.socket === "filtering").map(async (p) => {
        const { answer } = await this.#request(p, schedule);
        if (p.test === "filteringII" || p.test === "filteringIII") {
          o[p.test] = answer.outcome === "mapped"
            ? { outcome: "answered", from: answer.from }
            : answer.outcome === "error"
            ? answer
            : { outcome: "no-answer" };
        }
      })
      : [];
    const hairpin = hairpinning && behindNat
      ? this.#hairpin(mapped, schedule).then((works) => void (o.hairpinning = works))
      : Promise.resolve();
    await Promise.all([...filteringTests, hairpin]);

    const testII = plan.find((p) => p.test === "testII");
    let secondMapped: SocketAddress | undefined;
    if (testII) {
      const { answer } = await this.#request(testII, schedule);
      o.testII = dropFrom(answer);
      if (answer.outcome === "mapped") secondMapped = answer.mapped;
    }
    const testIII = plan.find((p) => p.test === "testIII");
    if (testIII && !(secondMapped && sameSocketAddress(secondMapped, mapped))) {
      o.testIII = dropFrom((await this.#request(testIII, schedule)).answer);
    }
  }

  /** Sends one planned request and records what it got. */
  async #request(
    planned: PlannedRequest,
    schedule: RetransmitSchedule,
  ): Promise<{ answer: Answer; otherAddress?: SocketAddress; rttMs?: number }> {
    const transport = planned.socket === "mapping" ? this.#mapping : this.#filtering!;
    const extra: StunAttribute[] = familyOf(planned.destination) === 6
      ? [{ type: "PADDING", length: IPV6_PADDING }]
      : [];
    const message = bindingRequest({
      changeIp: planned.changeIp,
      changePort: planned.changePort,
      extra,
    });
    const outcome = await this.#client.transact(
      planned.socket,
      (bytes, to) => transport.send(bytes, to),
      encodeStunMessage(message, { fingerprint: true }),
      message.transactionId,
      planned.destination,
      schedule,
    );
    const record: NatTestRecord = {
      test: planned.test,
      socket: planned.socket,
      destination: planned.destination,
      changeIp: planned.changeIp,
      changePort: planned.changePort,
      transmissions: outcome.transmissions,
      outcome: "no-answer",
    };
    this.#tests.push(record);
    const response = outcome.response;
    if (!response) return { answer: { outcome: "no-answer" } };
    record.from = response.from;
    record.elapsedMs = round(outcome.elapsedMs!);
    if (response.message.stunClass === "error") {
      const error = getAttribute(response.message, "ERROR-CODE");
      record.outcome = "error";
      record.error = { code: error?.code ?? 0, reason: error?.reason };
      return { answer: { outcome: "error", code: record.error.code, reason: error?.reason } };
    }
    const mapped = mappedAddressOf(response.message);
    if (!mapped) {
      record.outcome = "error";
      record.error = { code: 0, reason: "a success response without a mapped address" };
      return { answer: { outcome: "error", code: 0, reason: record.error.reason } };
    }
    record.outcome = "answered";
    record.mapped = mapped;
    return {
      answer: { outcome: "mapped", mapped, from: response.from },
      otherAddress: getAttribute(response.message, "OTHER-ADDRESS")?.address,
      rttMs: outcome.rttMs,
    };
  }

  /**
   * RFC 5780 §4.6: a request from the second socket (the mapping socket itself without one)
   * to our own public address comes back to the mapping socket only if the NAT hairpins.
   */
  async #hairpin(mapped: SocketAddress, schedule: RetransmitSchedule): Promise<boolean> {
    const socket = this.#filtering ? "filtering" : "mapping";
    const transport = this.#filtering ?? this.#mapping;
    const message = bindingRequest();
    const arrived = this.#client.awaitRequest("mapping", message.transactionId, schedule.giveUpMs);
    const sending = this.#client.transact(
      socket,
      (bytes, to) => transport.send(bytes, to),
      encodeStunMessage(message, { fingerprint: true }),
      message.transactionId,
      mapped,
      schedule,
    );
    const started = performance.now();
    const from = await arrived;
    this.#client.cancel(message.transactionId);
    const { transmissions } = await sending;
    this.#tests.push({
      test: "hairpinning",
      socket,
      destination: mapped,
      changeIp: false,
      changePort: false,
      transmissions,
      outcome: from ? "answered" : "no-answer",
      from,
      elapsedMs: from ? round(performance.now() - started) : undefined,
    });
    return from !== undefined;
  }
}

/** A mapping test's answer with where it came from (kept for the records). */
type Answer =
  | { outcome: "mapped"; mapped: SocketAddress; from: SocketAddress }
  | { outcome: "no-answer" }
  | { outcome: "error"; code: number; reason?: string };

function dropFrom(answer: Answer): NatObservations["testI"] {
  return answer.outcome === "mapped" ? { outcome: "mapped", mapped: answer.mapped } : answer;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
