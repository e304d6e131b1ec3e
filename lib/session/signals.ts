/**
 * Signalling inside the end-to-end session (`ztna-session/1`): JSON messages
 * on the first bidirectional stream, which the agent opens right after the
 * handshake. The relay carries the session but can read, forge or replay none
 * of it. Messages:
 *
 * - `admitted` (connector → agent): the connector's access list let the agent in;
 * - `candidates` (both ways, again whenever they change): the sender's
 *   candidate addresses, its punch key and its punch clock;
 * - `punch` (agent → connector): start round `round` of punching now.
 *
 * Unknown message types are skipped (forward compatibility).
 */
import type { QuicStream } from "../quic/stream.ts";
import { FramedJsonStream } from "../control/framed_json.ts";
import { ProtocolError } from "../control/protocol_error.ts";
import { type Candidate, type CandidateKind, MAX_CANDIDATES } from "./candidates.ts";
import { PUNCH_KEY_BYTES } from "./punch_packet.ts";
import { NAT_SUMMARY_VALUES, type NatSummary } from "./nat_compat.ts";

/** The signalling stream: the first bidirectional stream the agent (the QUIC client) opens. */
export const SIGNAL_STREAM_ID = 0;

/** Largest signalling message accepted. */
export const MAX_SIGNAL_BYTES = 8 * 1024;

/** Every signalling message this build knows. */
export type Signal =
  | { type: "admitted" }
  | {
    type: "candidates";
    /** The sender's punch key, base64 (32 bytes); the same for the whole session. */
    key: string;
    /** The sender's punch clock when it sent this (ms, uint32). */
    clock: number;
    candidates: Candidate[];
    /** The sender's NAT behaviour, once its node measured it. */
    nat?: NatSummary;
  }
  | { type: "punch"; round: number };

const KINDS: readonly CandidateKind[] = ["lan", "public", "guess", "reflexive"];

/** Decodes a base64 punch key; ProtocolError unless it is 32 bytes. */
export function decodePunchKey(text: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    throw new ProtocolError("punch key is not base64");
  }
  if (bytes.length !== PUNCH_KEY_BYTES) {
    throw new ProtocolError(`punch key has ${bytes.length} bytes, not ${PUNCH_KEY_BYTES}`);
  }
  return bytes;
}

/** Encodes a punch key for a `candidates` message. */
export function encodePunchKey(key: Uint8Array): string {
  return btoa(String.fromCharCode(...key));
}

function isUint(value: unknown, max: number): boolean {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= max;
}

/** Validates a decoded JSON value as a Signal; undefined for an unknown type. */
export function parseSignal(value: unknown): Signal | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("a signal must be a JSON object");
  }
  const m = value as Record<string, unknown>;
  if (typeof m.type !== "string") throw new ProtocolError('a signal needs a string "type"');
  switch (m.type) {
    case "admitted":
      return { type: "admitted" };
    case "candidates": {
      if (typeof m.key !== "string") throw new ProtocolError('candidates need a "key"');
      decodePunchKey(m.key);
      if (!isUint(m.clock, 0xffff_ffff)) throw new ProtocolError('candidates need a "clock"');
      if (!Array.isArray(m.candidates) || m.candidates.length > MAX_CANDIDATES) {
        throw new ProtocolError(`candidates need a list of at most ${MAX_CANDIDATES}`);
      }
      const candidates = m.candidates.map((c): Candidate => {
        const entry = c as Record<string, unknown>;
        if (
          typeof entry !== "object" || entry === null || typeof entry.address !== "string" ||
          entry.address.length > 64 || !KINDS.includes(entry.kind as CandidateKind)
        ) {
          throw new ProtocolError(`invalid candidate ${JSON.stringify(c)}`);
        }
        return { address: entry.address, kind: entry.kind as CandidateKind };
      });
      const nat = m.nat === undefined ? undefined : parseNat(m.nat);
      return {
        type: "candidates",
        key: m.key,
        clock: m.clock as number,
        candidates,
        ...(nat ? { nat } : {}),
      };
    }
    case "punch":
      if (!isUint(m.round, 0xffff)) throw new ProtocolError('punch needs a "round" (uint16)');
      return { type: "punch", round: m.round as number };
    default:
      return undefined;
  }
}

function parseNat(value: unknown): NatSummary {
  const nat = value as Record<string, unknown>;
  const known = (v: unknown) => NAT_SUMMARY_VALUES.includes(v as NatSummary["mapping"]);
  if (typeof nat !== "object" || nat === null || !known(nat.mapping) || !known(nat.filtering)) {
    throw new ProtocolError(`invalid NAT behaviour ${JSON.stringify(value)}`);
  }
  return { mapping: nat.mapping, filtering: nat.filtering } as NatSummary;
}

/** The session's signalling stream. */
export class SignalStream extends FramedJsonStream<Signal> {
  constructor(stream: QuicStream) {
    super(stream, parseSignal, MAX_SIGNAL_BYTES, "session signal");
  }
}
