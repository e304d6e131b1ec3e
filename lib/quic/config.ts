/** Builds a quiche configuration from typed options; owns the native object. */
import { quiche } from "../../ffi/quiche.ts";
import { QUICHE_PROTOCOL_VERSION } from "../../ffi/quiche_constants.ts";
import { QuicheError } from "./errors.ts";

/** Congestion controllers quiche offers. */
export type CongestionControl = "cubic" | "reno" | "bbr2_gcongestion";

/** Options of a QUIC configuration; every size is in bytes, every time in milliseconds. */
export interface QuicConfigOptions {
  /** ALPN protocol names, most preferred first. */
  alpn: string[];
  /** PEM certificate chain file (a server's, or a client's for mutual TLS). */
  certificateChainFile?: string;
  /** PEM (PKCS#8) private key file matching the chain. */
  privateKeyFile?: string;
  /** PEM file of CA certificates trusted to sign the peer's certificate. */
  caFile?: string;
  /**
   * Verify the peer's certificate against `caFile` (default true). On a server,
   * true requires a client certificate (mutual TLS). quiche itself defaults to
   * no verification, so this is always set explicitly.
   */
  verifyPeer?: boolean;
  /** Idle timeout; 0 disables it. Default 30 s. */
  idleTimeoutMs?: number;
  /** Largest UDP payload accepted and sent. Default 1350 to send, 1500 to receive. */
  maxSendUdpPayload?: number;
  /** Largest UDP payload accepted. */
  maxRecvUdpPayload?: number;
  /** Connection-level flow-control window. Default 16 MiB. */
  initialMaxData?: number;
  /** Per-stream flow-control window. Default 4 MiB. */
  initialMaxStreamData?: number;
  /** Concurrent bidirectional streams the peer may open. Default 100. */
  initialMaxStreamsBidi?: number;
  /** Concurrent unidirectional streams the peer may open. Default 100. */
  initialMaxStreamsUni?: number;
  /** DATAGRAM frame queues (RFC 9221); `false` disables DATAGRAM support. Default 1024 each way. */
  datagrams?: { receiveQueue: number; sendQueue: number } | false;
  /** Congestion controller. Default cubic. */
  congestionControl?: CongestionControl;
  /** Connection IDs we keep active for the peer (needed for migration). Default 4. */
  activeConnectionIdLimit?: number;
  /** Allow the peer to migrate to a new path. Default true. */
  migration?: boolean;
}

function cPath(path: string): Uint8Array {
  return new TextEncoder().encode(`${path}\0`);
}

/** Encodes ALPN names as the length-prefixed wire list quiche expects. */
export function encodeAlpn(names: string[]): Uint8Array {
  const parts = names.map((name) => new TextEncoder().encode(name));
  for (const [i, part] of parts.entries()) {
    if (part.length === 0 || part.length > 255) {
      throw new Error(`invalid ALPN name "${names[i]}": must be 1-255 bytes`);
    }
  }
  const out = new Uint8Array(parts.reduce((sum, part) => sum + 1 + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out[offset++] = part.length;
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A native quiche configuration. Free it with `free()` once no new connection needs it. */
export class QuicConfig {
  /** The options it was built from. */
  readonly options: Readonly<QuicConfigOptions>;
  #pointer: Deno.PointerObject | null;

  constructor(options: QuicConfigOptions) {
    this.options = options;
    const q = quiche();
    const pointer = q.quiche_config_new(QUICHE_PROTOCOL_VERSION);
    if (pointer === null) throw new Error("quiche_config_new returned NULL");
    this.#pointer = pointer;
    try {
      this.#apply(pointer, options);
    } catch (error) {
      this.free();
      throw error;
    }
  }

  #apply(p: Deno.PointerObject, o: QuicConfigOptions): void {
    const q = quiche();
    const check = (what: string, code: number) => {
      if (code < 0) throw new QuicheError(what, code);
    };
    if (o.certificateChainFile) {
      if (q.quiche_config_load_cert_chain_from_pem_file(p, cPath(o.certificateChainFile)) < 0) {
        throw new Error(`cannot load certificate chain from ${o.certificateChainFile}`);
      }
    }
    if (o.privateKeyFile) {
      if (q.quiche_config_load_priv_key_from_pem_file(p, cPath(o.privateKeyFile)) < 0) {
        throw new Error(`cannot load private key from ${o.privateKeyFile} (PEM, PKCS#8 expected)`);
      }
    }
    if (o.caFile) {
      if (q.quiche_config_load_verify_locations_from_file(p, cPath(o.caFile)) < 0) {
        throw new Error(`cannot load CA certificates from ${o.caFile}`);
      }
    }
    q.quiche_config_verify_peer(p, o.verifyPeer ?? true);
    const alpn = encodeAlpn(o.alpn);
    check("setting ALPN", q.quiche_config_set_application_protos(p, alpn, BigInt(alpn.length)));
    q.quiche_config_set_max_idle_timeout(p, BigInt(o.idleTimeoutMs ?? 30_000));
    q.quiche_config_set_max_send_udp_payload_size(p, BigInt(o.maxSendUdpPayload ?? 1350));
    q.quiche_config_set_max_recv_udp_payload_size(p, BigInt(o.maxRecvUdpPayload ?? 1500));
    const maxData = o.initialMaxData ?? 16 << 20;
    const maxStreamData = o.initialMaxStreamData ?? 4 << 20;
    q.quiche_config_set_initial_max_data(p, BigInt(maxData));
    q.quiche_config_set_initial_max_stream_data_bidi_local(p, BigInt(maxStreamData));
    q.quiche_config_set_initial_max_stream_data_bidi_remote(p, BigInt(maxStreamData));
    q.quiche_config_set_initial_max_stream_data_uni(p, BigInt(maxStreamData));
    q.quiche_config_set_max_connection_window(p, BigInt(Math.max(maxData, 24 << 20)));
    q.quiche_config_set_max_stream_window(p, BigInt(Math.max(maxStreamData, 16 << 20)));
    q.quiche_config_set_initial_max_streams_bidi(p, BigInt(o.initialMaxStreamsBidi ?? 100));
    q.quiche_config_set_initial_max_streams_uni(p, BigInt(o.initialMaxStreamsUni ?? 100));
    const datagrams = o.datagrams ?? { receiveQueue: 1024, sendQueue: 1024 };
    if (datagrams) {
      q.quiche_config_enable_dgram(
        p,
        true,
        BigInt(datagrams.receiveQueue),
        BigInt(datagrams.sendQueue),
      );
    }
    const cc = o.congestionControl ?? "cubic";
    const ccCode = q.quiche_config_set_cc_algorithm_name(p, cPath(cc));
    if (ccCode < 0) throw new Error(`unknown congestion control "${cc}"`);
    q.quiche_config_set_active_connection_id_limit(p, BigInt(o.activeConnectionIdLimit ?? 4));
    q.quiche_config_set_disable_active_migration(p, !(o.migration ?? true));
  }

  /** The native pointer, for lib/quic only; throws after `free()`. */
  get pointer(): Deno.PointerObject {
    if (this.#pointer === null) throw new Error("QuicConfig used after free()");
    return this.#pointer;
  }

  /** Frees the native configuration; safe to call twice. Live connections are unaffected. */
  free(): void {
    if (this.#pointer === null) return;
    quiche().quiche_config_free(this.#pointer);
    this.#pointer = null;
  }
}
