/**
 * Bridging an accepted connection to a kernel socket, as the connector does: bytes both
 * ways with back-pressure, each direction's end passed on as a half-close (FIN), and a
 * failure on either side resetting the connection and closing the socket.
 *
 * It uses the socket's `read`/`write`/`closeWrite`, not its streams: closing a Deno
 * `TcpConn`'s `writable`, or reaching the end of its `readable`, closes the whole socket,
 * which would turn every half-close into a reset.
 */
import type { TcpConnection } from "./connection.ts";

/** The part of `Deno.TcpConn` a bridge uses. */
export interface BridgeSocket {
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
}

/** Most bytes read from the socket per `read`. */
const READ_SIZE = 64 * 1024;
/** Bytes of the first read buffer; it doubles (up to READ_SIZE) each time a read fills it. */
const FIRST_READ_SIZE = 4 * 1024;

/**
 * Runs until both directions are done, then closes `socket`. Rejects with the first failure
 * (the connection is then reset and the socket closed).
 */
export async function bridge(connection: TcpConnection, socket: BridgeSocket): Promise<void> {
  let closed = false;
  const closeSocket = () => {
    if (closed) return;
    closed = true;
    try {
      socket.close();
    } catch {
      // Already closed.
    }
  };
  const toSocket = (async () => {
    const reader = connection.readable.getReader();
    try {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
        for (let at = 0; at < chunk.value.length;) {
          at += await socket.write(chunk.value.subarray(at));
        }
      }
      await socket.closeWrite();
    } catch (error) {
      await reader.cancel(error).catch(() => {});
      throw error;
    }
  })();
  const fromSocket = (async () => {
    const writer = connection.writable.getWriter();
    // Small while the socket brings little (most connections wait with a read pending).
    let buffer = new Uint8Array(FIRST_READ_SIZE);
    try {
      for (let n = await socket.read(buffer); n !== null; n = await socket.read(buffer)) {
        await writer.write(buffer.subarray(0, n)); // resolves once copied to the send buffer
        if (n === buffer.length && n < READ_SIZE) buffer = new Uint8Array(n * 2);
      }
      await writer.close();
    } catch (error) {
      await writer.abort(error).catch(() => {});
      throw error;
    }
  })();
  toSocket.catch(closeSocket);
  fromSocket.catch(closeSocket);
  const [up, down] = await Promise.allSettled([toSocket, fromSocket]);
  closeSocket();
  if (up.status === "rejected") throw up.reason;
  if (down.status === "rejected") throw down.reason;
}
