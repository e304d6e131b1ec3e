/**
 * The relay control protocol (docs/protocol.md): JSON messages on a node's
 * first bidirectional stream of its relay connection. Every message is
 * validated here; anything else is a ProtocolError.
 */

/** The protocol version this build speaks. */
export const PROTOCOL_VERSION = 1;

/** Roles a node's certificate grants (URI SAN `ztna:role:<role>`). */
export type Role = "relay" | "connector" | "agent";

/** Error codes of an `error` message. */
export type ErrorCode =
  | "unsupported-version"
  | "bad-message"
  | "forbidden"
  | "unknown-service"
  | "unknown-session"
  | "rate-limited";

/** Every control message. */
export type Message =
  | { type: "hello"; version: number; role: Role }
  | { type: "welcome"; version: number; node: string; observed: string }
  | { type: "observed-address"; observed: string }
  | { type: "register"; service: string }
  | { type: "registered"; service: string }
  | {
    type: "open-session";
    service: string;
    /** A session ID to keep, when an agent re-opens its session after losing the relay. */
    resume?: string;
  }
  | {
    type: "session";
    session: string;
    service: string;
    /** The other end's node name. */
    peer: string;
    /** The other end's address as the relay observes it. */
    peerObserved: string;
    /** Which end of the session this node is: the agent is the QUIC client. */
    side: "agent" | "connector";
  }
  | { type: "close-session"; session: string; reason: string }
  | { type: "error"; code: ErrorCode; message: string; session?: string; service?: string };

/** A message that breaks the protocol. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SESSION_ID = /^[0-9a-f]{16}$/;
const ROLES: readonly string[] = ["relay", "connector", "agent"];
const ERROR_CODES: readonly string[] = [
  "unsupported-version",
  "bad-message",
  "forbidden",
  "unknown-service",
  "unknown-session",
  "rate-limited",
];

/** True for a valid service name: a DNS label (lowercase letters, digits, inner hyphens). */
export function isServiceName(name: string): boolean {
  return SERVICE_NAME.test(name);
}

/** True for a session ID: 16 lowercase hex digits (64 bits). */
export function isSessionId(id: string): boolean {
  return SESSION_ID.test(id);
}

function field(object: Record<string, unknown>, name: string, kind: "string" | "number"): void {
  const value = object[name];
  if (kind === "string" ? typeof value !== "string" : typeof value !== "number") {
    throw new ProtocolError(`"${object.type}" message needs a ${kind} "${name}"`);
  }
}

/** Validates a decoded JSON value as a Message. */
export function parseMessage(value: unknown): Message {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("a message must be a JSON object");
  }
  const m = value as Record<string, unknown>;
  const service = () => {
    field(m, "service", "string");
    if (!isServiceName(m.service as string)) {
      throw new ProtocolError(`invalid service name ${JSON.stringify(m.service)}`);
    }
  };
  const session = () => {
    field(m, "session", "string");
    if (!isSessionId(m.session as string)) {
      throw new ProtocolError(`invalid session ID ${JSON.stringify(m.session)}`);
    }
  };
  switch (m.type) {
    case "hello":
      field(m, "version", "number");
      field(m, "role", "string");
      if (!ROLES.includes(m.role as string)) throw new ProtocolError(`unknown role ${m.role}`);
      break;
    case "welcome":
      field(m, "version", "number");
      field(m, "node", "string");
      field(m, "observed", "string");
      break;
    case "observed-address":
      field(m, "observed", "string");
      break;
    case "register":
    case "registered":
      service();
      break;
    case "open-session":
      service();
      if (m.resume !== undefined && (typeof m.resume !== "string" || !isSessionId(m.resume))) {
        throw new ProtocolError(`invalid session ID to resume ${JSON.stringify(m.resume)}`);
      }
      break;
    case "session":
      session();
      service();
      field(m, "peer", "string");
      field(m, "peerObserved", "string");
      if (m.side !== "agent" && m.side !== "connector") {
        throw new ProtocolError(`invalid session side ${JSON.stringify(m.side)}`);
      }
      break;
    case "close-session":
      session();
      field(m, "reason", "string");
      break;
    case "error":
      field(m, "code", "string");
      field(m, "message", "string");
      if (!ERROR_CODES.includes(m.code as string)) {
        throw new ProtocolError(`unknown error code ${m.code}`);
      }
      break;
    default:
      throw new ProtocolError(`unknown message type ${JSON.stringify(m.type)}`);
  }
  return m as Message;
}
