/**
 * The relay control protocol (docs/protocol.md): JSON messages on a node's
 * first bidirectional stream of its relay connection. Every message is
 * validated here. A well-formed message of a type this build does not know is
 * skipped (forward compatibility); anything malformed is a ProtocolError.
 */
import { ProtocolError } from "./protocol_error.ts";

export { ProtocolError };

/** The protocol version this build speaks. */
export const PROTOCOL_VERSION = 3;

/** Roles a node's certificate grants (URI SAN `ztna:role:<role>`). */
export type Role = "relay" | "connector" | "agent";

/** Error codes of an `error` message. */
export type ErrorCode =
  | "unsupported-version"
  | "bad-message"
  | "forbidden"
  | "unknown-service"
  | "unknown-session"
  | "rate-limited"
  | "access-denied"
  | "limit-reached"
  | "unavailable";

/** Every control message this build knows. */
export type Message =
  | { type: "hello"; version: number; role: Role }
  | { type: "welcome"; version: number; node: string; observed: string }
  | { type: "observed-address"; observed: string }
  | { type: "register"; id: number; service: string }
  | { type: "registered"; id: number; service: string }
  | {
    type: "open-session";
    id: number;
    service: string;
    /** The ID of a live session to continue, when an agent re-opens it after the relay lost it. */
    resume?: string;
  }
  | {
    type: "session";
    /** The `open-session` request this answers (absent in the announcement to the connector). */
    id?: number;
    /** The ID the relay chose; it prefixes the session's relay DATAGRAMs. */
    session: string;
    service: string;
    /** The other end's node name. */
    peer: string;
    /** Which end of the session this node is: the agent is the QUIC client. */
    side: "agent" | "connector";
    /**
     * To the connector: the session the agent asks to continue under the new
     * ID. To the agent: present only if the connector continued that session.
     */
    resumes?: string;
  }
  | {
    type: "accept-session";
    session: string;
    /** The session the connector continues under this ID, if it did. */
    resumes?: string;
  }
  | {
    type: "refuse-session";
    session: string;
    code: Extract<ErrorCode, "access-denied" | "limit-reached">;
    message: string;
  }
  | { type: "peer-moved"; session: string }
  | { type: "close-session"; session: string; reason: string }
  | {
    type: "error";
    /** The request this answers, if it answers one. */
    id?: number;
    code: ErrorCode;
    message: string;
    session?: string;
    service?: string;
  };

/** Messages that are requests, answered by a message with the same `id`. */
export type Request = Extract<Message, { type: "register" | "open-session" }>;

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
  "access-denied",
  "limit-reached",
  "unavailable",
];
const REFUSAL_CODES: readonly string[] = ["access-denied", "limit-reached"];
/** Longest address text (`[v6]:port` is at most 47 characters). */
const MAX_ADDRESS_TEXT = 64;
/** Longest free text (reasons, error messages). */
const MAX_TEXT = 1024;

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

function text(object: Record<string, unknown>, name: string, max: number): void {
  field(object, name, "string");
  if ((object[name] as string).length > max) {
    throw new ProtocolError(`"${object.type}" message has a "${name}" over ${max} characters`);
  }
}

function optionalSessionId(object: Record<string, unknown>, name: string): void {
  const value = object[name];
  if (value !== undefined && (typeof value !== "string" || !isSessionId(value))) {
    throw new ProtocolError(`"${object.type}" message has an invalid "${name}" session ID`);
  }
}

function requestId(object: Record<string, unknown>, required: boolean): void {
  const id = object.id;
  if (id === undefined && !required) return;
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
    throw new ProtocolError(
      `"${object.type}" message needs a request "id" (a non-negative integer)`,
    );
  }
}

/**
 * Validates a decoded JSON value as a Message; returns undefined for a
 * well-formed message of an unknown type (to be skipped).
 */
export function parseMessage(value: unknown): Message | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("a message must be a JSON object");
  }
  const m = value as Record<string, unknown>;
  if (typeof m.type !== "string" || m.type.length === 0 || m.type.length > 64) {
    throw new ProtocolError('a message needs a "type" of 1-64 characters');
  }
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
      text(m, "node", MAX_TEXT);
      text(m, "observed", MAX_ADDRESS_TEXT);
      break;
    case "observed-address":
      text(m, "observed", MAX_ADDRESS_TEXT);
      break;
    case "register":
    case "registered":
      requestId(m, true);
      service();
      break;
    case "open-session":
      requestId(m, true);
      service();
      optionalSessionId(m, "resume");
      break;
    case "session":
      requestId(m, false);
      session();
      service();
      text(m, "peer", MAX_TEXT);
      if (m.side !== "agent" && m.side !== "connector") {
        throw new ProtocolError(`invalid session side ${JSON.stringify(m.side)}`);
      }
      optionalSessionId(m, "resumes");
      break;
    case "accept-session":
      session();
      optionalSessionId(m, "resumes");
      break;
    case "refuse-session":
      session();
      field(m, "code", "string");
      text(m, "message", MAX_TEXT);
      if (!REFUSAL_CODES.includes(m.code as string)) {
        throw new ProtocolError(`invalid refusal code ${JSON.stringify(m.code)}`);
      }
      break;
    case "peer-moved":
      session();
      break;
    case "close-session":
      session();
      text(m, "reason", MAX_TEXT);
      break;
    case "error":
      requestId(m, false);
      field(m, "code", "string");
      text(m, "message", MAX_TEXT);
      if (!ERROR_CODES.includes(m.code as string)) {
        throw new ProtocolError(`unknown error code ${m.code}`);
      }
      break;
    default:
      return undefined;
  }
  return m as Message;
}
