/**
 * Pure STUN (RFC 8489) for NAT-behaviour discovery (RFC 5780), without sockets: a strict
 * message codec with MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT, the plan of requests the
 * RFC 5780 tests send, and the classification of their answers in RFC 4787 terms; and the
 * server's side: what to answer to a datagram (never more than 3x its size), from which of
 * its addresses, and per-source rate limits in a bounded table.
 */
export type {
  AddressAttribute,
  AddressAttributeType,
  AttributeOfType,
  IceRoleAttribute,
  IntegrityAttribute,
  IntegrityAttributeType,
  StunAttribute,
  TextAttribute,
  TextAttributeType,
  UnknownAttribute,
} from "./attributes.ts";
export { decodeAttribute, encodeAttribute } from "./attribute_codec.ts";
export { bindingRequest, type BindingRequestOptions, createTransactionId } from "./binding.ts";
export {
  ATTRIBUTE_CODES,
  ATTRIBUTE_NAMES,
  FINGERPRINT_XOR,
  isComprehensionRequired,
  type KnownAttributeType,
  MAGIC_COOKIE,
  MAX_TEXT_BYTES,
  MAX_USERNAME_BYTES,
  METHOD_BINDING,
  STUN_FIRST_BYTES,
  STUN_HEADER_LENGTH,
  type StunClass,
  TRANSACTION_ID_LENGTH,
} from "./constants.ts";
export { crc32 } from "./crc32.ts";
export { decodeStunMessage, MAX_STUN_ATTRIBUTES } from "./decode.ts";
export { encodeStunMessage, type StunEncodeOptions } from "./encode.ts";
export { STUN_ERROR_REASONS, StunError, type StunErrorReason } from "./errors.ts";
export { isStunMessage, MAX_METHOD, messageType, splitMessageType } from "./header.ts";
export {
  computeFingerprint,
  computeIntegrity,
  type IntegrityAlgorithm,
  longTermKey,
  shortTermKey,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from "./integrity.ts";
export {
  type DecodedStunMessage,
  getAttribute,
  type IntegrityPosition,
  mappedAddressOf,
  type StunMessage,
} from "./message.ts";
export { saslprep } from "./saslprep.ts";
export { ipFromBytes, ipToBytes, sameIp, sameSocketAddress } from "./socket_address.ts";
export {
  type BehaviorFinding,
  type ClassicNatType,
  classifyNat,
  type FilteringAnswer,
  type MappingAnswer,
  NAT_BEHAVIORS,
  type NatBehavior,
  type NatClassification,
  type NatObservations,
} from "./nat_behavior.ts";
export {
  type NatPlanOptions,
  type NatTestName,
  type NatTestSocket,
  planNatTests,
  type PlannedRequest,
} from "./nat_plan.ts";
export { answerStun, MAX_AMPLIFICATION, type StunDropReason, type StunReply } from "./responder.ts";
export {
  checkServerAddresses,
  isWildcardIp,
  listeningAddresses,
  otherAddress,
  responseOrigin,
  StunAddressError,
  type StunServerAddresses,
} from "./server_addresses.ts";
export {
  DEFAULT_SOURCE_LIMITS,
  type LimitVerdict,
  SourceLimiter,
  type SourceLimits,
} from "./source_limiter.ts";
