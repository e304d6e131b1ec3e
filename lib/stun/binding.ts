/** Binding requests as the NAT-behaviour tests send them, and fresh transaction IDs. */
import type { StunAttribute } from "./attributes.ts";
import { METHOD_BINDING, TRANSACTION_ID_LENGTH } from "./constants.ts";
import type { StunMessage } from "./message.ts";

/** A random 96-bit transaction ID (RFC 8489 §6: uniformly random, from a CSPRNG). */
export function createTransactionId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(TRANSACTION_ID_LENGTH));
}

/** What a Binding request asks for. */
export interface BindingRequestOptions {
  /** The transaction ID; a fresh random one if absent. */
  transactionId?: Uint8Array;
  /** CHANGE-REQUEST "change IP": answer from the server's other IP. */
  changeIp?: boolean;
  /** CHANGE-REQUEST "change port": answer from the server's other port. */
  changePort?: boolean;
  /** Attributes to add after CHANGE-REQUEST (SOFTWARE, PADDING, ...). */
  extra?: StunAttribute[];
}

/**
 * A Binding request: CHANGE-REQUEST only when a flag is set, since a server without RFC 5780
 * answers any CHANGE-REQUEST (a comprehension-required attribute) with a 420.
 */
export function bindingRequest(options: BindingRequestOptions = {}): StunMessage {
  const attributes: StunAttribute[] = [];
  if (options.changeIp || options.changePort) {
    attributes.push({
      type: "CHANGE-REQUEST",
      changeIp: options.changeIp ?? false,
      changePort: options.changePort ?? false,
    });
  }
  attributes.push(...(options.extra ?? []));
  return {
    stunClass: "request",
    method: METHOD_BINDING,
    transactionId: options.transactionId ?? createTransactionId(),
    attributes,
  };
}
