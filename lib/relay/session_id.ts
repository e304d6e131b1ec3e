/** Session IDs: 8 random bytes that prefix every session packet in a relay DATAGRAM. */

/** Length of a session ID on the wire. */
export const SESSION_ID_BYTES = 8;

/** The hex form used in control messages. */
export function sessionIdHex(bytes: Uint8Array): string {
  let hex = "";
  for (let i = 0; i < SESSION_ID_BYTES; i++) hex += bytes[i].toString(16).padStart(2, "0");
  return hex;
}

/** The wire form of a hex session ID. */
export function sessionIdBytes(hex: string): Uint8Array {
  const out = new Uint8Array(SESSION_ID_BYTES);
  for (let i = 0; i < SESSION_ID_BYTES; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
