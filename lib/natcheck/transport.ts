/**
 * The two kinds of socket a NAT check sends STUN from: a ztna Endpoint's own socket (STUN
 * rides beside QUIC: the endpoint hands over datagrams whose first byte is 0x00 or 0x01) and
 * a plain UdpSocket (the fresh second socket the filtering tests need).
 */
import { decodeSockaddr, type SocketAddress } from "../net/address.ts";
import type { UdpSocket } from "../net/udp_socket.ts";
import type { Endpoint } from "../quic/endpoint.ts";
import { STUN_FIRST_BYTES } from "../stun/constants.ts";
import { NatCheckError } from "./errors.ts";

/** Handles one datagram; the bytes are valid only during the call. */
export type DatagramHandler = (packet: Uint8Array, from: SocketAddress) => void;

/** A socket a NAT check sends STUN from and hears STUN on. */
export interface StunTransport {
  /** The address the socket is bound to (a wildcard IP for a wildcard socket). */
  readonly localAddress: SocketAddress;
  /** Queues a datagram for `to`; false if the send queue is full. */
  send(bytes: Uint8Array, to: SocketAddress): boolean;
  /** Releases the socket: an endpoint's stays open, a UdpSocket the check owns is closed. */
  close(): Promise<void>;
}

/**
 * STUN over an endpoint's socket: registers `handler` for first bytes 0x00 and 0x01 until
 * `close()`. Throws a NatCheckError ("busy") when another user (a STUN server, another
 * check) holds those bytes, or ("closed") when the endpoint is closed.
 */
export function endpointTransport(endpoint: Endpoint, handler: DatagramHandler): StunTransport {
  let unsubscribe: () => void;
  try {
    unsubscribe = endpoint.onRawPacket([...STUN_FIRST_BYTES], handler);
  } catch (error) {
    throw new NatCheckError(
      "busy",
      `the endpoint's STUN datagrams already have a handler (a STUN server, or another NAT ` +
        `check on this endpoint): ${(error as Error).message}`,
    );
  }
  return {
    localAddress: endpoint.localAddress,
    send(bytes, to) {
      try {
        return endpoint.sendRaw(bytes, to);
      } catch (error) {
        throw new NatCheckError(
          "closed",
          `cannot send on the endpoint: ${(error as Error).message}`,
        );
      }
    },
    close() {
      unsubscribe();
      return Promise.resolve();
    },
  };
}

/**
 * STUN over a UdpSocket whose receive loop has not started: this starts it (every datagram
 * goes to `handler`), and `close()` closes the socket.
 */
export function socketTransport(socket: UdpSocket, handler: DatagramHandler): StunTransport {
  if (socket.closed) throw new NatCheckError("closed", "the second socket is closed");
  let receiving: Promise<void>;
  try {
    receiving = socket.receive((batch) => {
      for (let i = 0; i < batch.count; i++) {
        const source = batch.buffer[i];
        const offset = batch.offsets[i];
        handler(
          batch.buffers[source].subarray(offset, offset + batch.lengths[i]),
          decodeSockaddr(batch.peers[source]),
        );
      }
    });
  } catch (error) {
    throw new NatCheckError(
      "busy",
      `the second socket must be fresh (its receive loop not started): ${(error as Error).message}`,
    );
  }
  return {
    localAddress: socket.localAddress,
    send(bytes, to) {
      const queued = socket.sendTo(bytes, socket.sockaddrFor(to));
      socket.flush();
      return queued;
    },
    async close() {
      await socket.close();
      await receiving.catch(() => {});
    },
  };
}
