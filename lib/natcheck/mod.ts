/**
 * NAT-behaviour discovery for ztna nodes: `checkNat` runs RFC 5780's tests from a node's own
 * Endpoint socket against the relay's STUN responder (or any RFC 5780 server) and classifies
 * the NAT in RFC 4787 terms, for the direct-path policy to use.
 */
export { checkNat, type NatCheckOptions } from "./check.ts";
export { NatCheckError, type NatCheckErrorReason } from "./errors.ts";
export type { NatCheckResult, NatTestRecord } from "./result.ts";
export { DEFAULT_MIN_RTO_MS, DEFAULT_TIMEOUT_MS } from "./schedule.ts";
export type {
  BehaviorFinding,
  ClassicNatType,
  NatBehavior,
  NatClassification,
} from "../stun/mod.ts";
