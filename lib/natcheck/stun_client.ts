/**
 * STUN client transactions over UDP (RFC 8489 §6.2.1): a request is retransmitted with a
 * doubling timeout until a response with its transaction ID arrives on the socket it left
 * from, or the schedule gives up. Also waits for a request of ours arriving back (the
 * hairpinning test). Timing comes from the caller's schedule, so a check on a LAN is fast.
 */
import type { SocketAddress } from "../net/address.ts";
import type { DecodedStunMessage } from "../stun/message.ts";
import { decodeStunMessage } from "../stun/decode.ts";
import { StunError } from "../stun/errors.ts";
import { METHOD_BINDING } from "../stun/constants.ts";

/** When to retransmit a request and when to give up. */
export interface RetransmitSchedule {
  /** The first retransmission timeout; it doubles after each transmission. */
  rtoMs: number;
  /** Transmissions in all (RFC 8489's Rc). */
  transmissions: number;
  /** Give up this long after the first transmission. */
  giveUpMs: number;
}

/** How a transaction ended. */
export interface TransactionOutcome {
  /** The response and the datagram's source; absent when none came in time. */
  response?: { message: DecodedStunMessage; from: SocketAddress };
  /** Transmissions made. */
  transmissions: number;
  /** Time from the first transmission to the response. */
  elapsedMs?: number;
  /** The round-trip time, when the response answered the only transmission made (Karn). */
  rttMs?: number;
}

/** The socket a datagram came in on, as the client's caller names them. */
export type SocketLabel = string;

interface Pending {
  socket: SocketLabel;
  started: number;
  transmissions: number;
  timers: ReturnType<typeof setTimeout>[];
  resolve(outcome: TransactionOutcome): void;
}

interface Awaited {
  socket: SocketLabel;
  timer: ReturnType<typeof setTimeout>;
  resolve(from: SocketAddress | undefined): void;
}

function key(transactionId: Uint8Array): string {
  return Array.from(transactionId, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Counters of datagrams the client could not use. */
export interface StunClientStats {
  /** Datagrams that were not well-formed STUN. */
  malformed: number;
  /** Well-formed messages for no transaction of ours (late, duplicate or foreign). */
  unmatched: number;
}

/** STUN transactions of one NAT check. */
export class StunClient {
  /** Counters. */
  readonly stats: StunClientStats = { malformed: 0, unmatched: 0 };
  readonly #pending = new Map<string, Pending>();
  readonly #awaited = new Map<string, Awaited>();
  #closed = false;

  /** The handler to give the transport labelled `socket`. */
  receiver(socket: SocketLabel): (packet: Uint8Array, from: SocketAddress) => void {
    return (packet, from) => this.#receive(socket, packet, from);
  }

  /**
   * Sends `request` (encoded, with transaction ID `transactionId`) to `to` by `send`, from
   * the socket `socket`, per `schedule`; resolves with the first response that comes back on
   * that socket, or with none.
   */
  transact(
    socket: SocketLabel,
    send: (bytes: Uint8Array, to: SocketAddress) => void,
    request: Uint8Array,
    transactionId: Uint8Array,
    to: SocketAddress,
    schedule: RetransmitSchedule,
  ): Promise<TransactionOutcome> {
    const id = key(transactionId);
    return new Promise((resolve) => {
      if (this.#closed) return resolve({ transmissions: 0 });
      const pending: Pending = {
        socket,
        started: performance.now(),
        transmissions: 0,
        timers: [],
        resolve: (outcome) => {
          for (const timer of pending.timers) clearTimeout(timer);
          this.#pending.delete(id);
          resolve(outcome);
        },
      };
      this.#pending.set(id, pending);
      const transmit = () => {
        pending.transmissions++;
        send(request, to);
      };
      let at = 0;
      let rto = schedule.rtoMs;
      for (let i = 1; i < schedule.transmissions; i++) {
        at += rto;
        rto *= 2;
        if (at >= schedule.giveUpMs) break;
        pending.timers.push(setTimeout(transmit, at));
      }
      pending.timers.push(
        setTimeout(
          () => pending.resolve({ transmissions: pending.transmissions }),
          schedule.giveUpMs,
        ),
      );
      transmit();
    });
  }

  /**
   * Resolves with the source of a request with `transactionId` arriving on `socket` (our own
   * request, hairpinned back by the NAT), or undefined after `timeoutMs`.
   */
  awaitRequest(
    socket: SocketLabel,
    transactionId: Uint8Array,
    timeoutMs: number,
  ): Promise<SocketAddress | undefined> {
    const id = key(transactionId);
    return new Promise((resolve) => {
      if (this.#closed) return resolve(undefined);
      const awaited: Awaited = {
        socket,
        timer: setTimeout(() => awaited.resolve(undefined), timeoutMs),
        resolve: (from) => {
          clearTimeout(awaited.timer);
          this.#awaited.delete(id);
          resolve(from);
        },
      };
      this.#awaited.set(id, awaited);
    });
  }

  /** Ends the transaction `transactionId` now, as unanswered (its retransmissions stop). */
  cancel(transactionId: Uint8Array): void {
    const pending = this.#pending.get(key(transactionId));
    pending?.resolve({ transmissions: pending.transmissions });
  }

  #receive(socket: SocketLabel, packet: Uint8Array, from: SocketAddress): void {
    if (this.#closed) return;
    let message: DecodedStunMessage;
    try {
      message = decodeStunMessage(packet.slice());
    } catch (error) {
      if (!(error instanceof StunError)) throw error;
      this.stats.malformed++;
      return;
    }
    const id = key(message.transactionId);
    if (message.method !== METHOD_BINDING) {
      this.stats.unmatched++;
      return;
    }
    if (message.stunClass === "request") {
      const awaited = this.#awaited.get(id);
      if (awaited && awaited.socket === socket) awaited.resolve(from);
      else this.stats.unmatched++;
      return;
    }
    const pending = this.#pending.get(id);
    if (message.stunClass === "indication" || !pending || pending.socket !== socket) {
      this.stats.unmatched++;
      return;
    }
    const elapsedMs = performance.now() - pending.started;
    pending.resolve({
      response: { message, from },
      transmissions: pending.transmissions,
      elapsedMs,
      rttMs: pending.transmissions === 1 ? elapsedMs : undefined,
    });
  }

  /** Ends every transaction and wait at once, unanswered. */
  close(): void {
    this.#closed = true;
    for (const pending of [...this.#pending.values()]) {
      pending.resolve({ transmissions: pending.transmissions });
    }
    for (const awaited of [...this.#awaited.values()]) awaited.resolve(undefined);
  }
}
