/**
 * Connection IDs: this endpoint's own are random, of one fixed length, so a
 * short-header packet's destination ID can be read without parsing anything
 * else. Stateless reset tokens are derived from them with a keyed hash.
 */
import { createHmac } from "node:crypto";

/** Length of every connection ID this endpoint issues. */
export const LOCAL_CID_LENGTH = 16;

/** A fresh random connection ID from the CSPRNG. */
export function newConnectionId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(LOCAL_CID_LENGTH));
}

/** A map key for a connection ID's bytes. */
export function cidKey(bytes: Uint8Array, offset = 0, length = bytes.length): string {
  let key = "";
  for (let i = offset; i < offset + length; i++) key += String.fromCharCode(bytes[i]);
  return key;
}

/**
 * The map key of a packet's destination connection ID, or null when the
 * packet is too short or its header is malformed.
 */
export function destinationCidKey(packet: Uint8Array, length: number): string | null {
  if (length < 1) return null;
  if (packet[0] & 0x80) {
    // Long header: flags, 4-byte version, DCID length, DCID.
    if (length < 6) return null;
    const dcidLength = packet[5];
    if (dcidLength > 20 || length < 6 + dcidLength) return null;
    return cidKey(packet, 6, dcidLength);
  }
  if (length < 1 + LOCAL_CID_LENGTH) return null;
  return cidKey(packet, 1, LOCAL_CID_LENGTH);
}

/** The stateless reset token for one of our connection IDs (RFC 9000 §10.3.2). */
export function resetToken(secret: Uint8Array, cid: Uint8Array): Uint8Array {
  const mac = createHmac("sha256", secret).update(cid).digest();
  return new Uint8Array(mac.buffer, mac.byteOffset, 16);
}
