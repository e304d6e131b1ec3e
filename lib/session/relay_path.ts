/**
 * A session's relay path: on the node's endpoint the session's peer appears at
 * a virtual address (0.0.0.0/8), and every packet quiche sends there leaves as
 * a DATAGRAM of the node's relay connection, prefixed with the 8-byte session
 * ID; the relay forwards it unchanged to the other end. Packets the relay
 * brings for the session are fed back through the virtual peer. Going direct
 * is a QUIC migration away from this path; falling back, a migration to it.
 */
import { type SocketAddress, virtualAddress } from "../net/address.ts";
import type { Endpoint, VirtualPeer } from "../quic/endpoint.ts";
import type { RelayLink } from "../node/relay_link.ts";
import { SESSION_ID_BYTES, sessionIdBytes } from "../relay/session_id.ts";

/** One frame buffer for every relay path (JS is single-threaded; quiche copies what it is given). */
const frame = new Uint8Array(65_536);

/** The relay path of one session. */
export class RelayPath {
  /** The virtual address quiche sees the peer at on this path. */
  readonly address: SocketAddress;
  readonly #peer: VirtualPeer;
  #id: Uint8Array;
  #attached = true;

  /** Attaches virtual peer number `index` for session `id` (hex) on `endpoint`, carried by `link`. */
  constructor(endpoint: Endpoint, link: RelayLink, id: string, index: number) {
    this.#id = sessionIdBytes(id);
    this.address = virtualAddress(index);
    this.#peer = endpoint.attachVirtualPeer(this.address, (packet) => {
      if (!this.#attached) return;
      frame.set(this.#id);
      frame.set(packet, SESSION_ID_BYTES);
      // A DATAGRAM that finds no relay connection or a full queue is lost, as on any path.
      link.sendDatagram(frame.subarray(0, SESSION_ID_BYTES + packet.length));
    });
  }

  /** Carries the session under a new relay session ID (it was continued at the relay). */
  set id(id: string) {
    this.#id = sessionIdBytes(id);
  }

  /** Whether packets for this path go to the relay (false while the relay lost the session). */
  get attached(): boolean {
    return this.#attached;
  }

  /** Stops or resumes sending through the relay (packets are dropped meanwhile). */
  set attached(value: boolean) {
    this.#attached = value;
  }

  /** Feeds a session packet the relay brought (the DATAGRAM without its session ID). */
  receive(packet: Uint8Array): void {
    this.#peer.receive(packet);
  }

  /** Detaches the virtual peer for good. */
  close(): void {
    this.#attached = false;
    this.#peer.detach();
  }
}
