/**
 * Symbol table for libquiche's C API (include/quiche.h of the pinned crate).
 *
 * Hot-path functions that return `ssize_t` are declared with an `i32` result: on
 * x86-64 (SysV) and AArch64 (AAPCS64) the value comes back in rax/x0 and `i32`
 * reads its low half, which is exact for everything these calls return (packet
 * and datagram sizes, negative error codes). It spares a BigInt per packet.
 * Calls whose result may exceed 2^31 keep their full 64-bit type.
 */
export const quicheSymbols = {
  quiche_version: { parameters: [], result: "pointer" },
  quiche_enable_debug_logging: { parameters: ["function", "pointer"], result: "i32" },

  // Configuration.
  quiche_config_new: { parameters: ["u32"], result: "pointer" },
  quiche_config_load_cert_chain_from_pem_file: { parameters: ["pointer", "buffer"], result: "i32" },
  quiche_config_load_priv_key_from_pem_file: { parameters: ["pointer", "buffer"], result: "i32" },
  quiche_config_load_verify_locations_from_file: {
    parameters: ["pointer", "buffer"],
    result: "i32",
  },
  quiche_config_verify_peer: { parameters: ["pointer", "bool"], result: "void" },
  quiche_config_grease: { parameters: ["pointer", "bool"], result: "void" },
  quiche_config_discover_pmtu: { parameters: ["pointer", "bool"], result: "void" },
  quiche_config_set_application_protos: {
    parameters: ["pointer", "buffer", "usize"],
    result: "i32",
  },
  quiche_config_set_max_idle_timeout: { parameters: ["pointer", "u64"], result: "void" },
  quiche_config_set_max_recv_udp_payload_size: { parameters: ["pointer", "usize"], result: "void" },
  quiche_config_set_max_send_udp_payload_size: { parameters: ["pointer", "usize"], result: "void" },
  quiche_config_set_initial_max_data: { parameters: ["pointer", "u64"], result: "void" },
  quiche_config_set_initial_max_stream_data_bidi_local: {
    parameters: ["pointer", "u64"],
    result: "void",
  },
  quiche_config_set_initial_max_stream_data_bidi_remote: {
    parameters: ["pointer", "u64"],
    result: "void",
  },
  quiche_config_set_initial_max_stream_data_uni: { parameters: ["pointer", "u64"], result: "void" },
  quiche_config_set_initial_max_streams_bidi: { parameters: ["pointer", "u64"], result: "void" },
  quiche_config_set_initial_max_streams_uni: { parameters: ["pointer", "u64"], result: "void" },
  quiche_config_set_disable_active_migration: { parameters: ["pointer", "bool"], result: "void" },
  quiche_config_set_cc_algorithm_name: { parameters: ["pointer", "buffer"], result: "i32" },
  quiche_config_enable_pacing: { parameters: ["pointer", "bool"], result: "void" },
  quiche_config_enable_dgram: {
    parameters: ["pointer", "bool", "usize", "usize"],
    result: "void",
  },
  quiche_config_set_max_connection_window: { parameters: ["pointer", "u64"], result: "void" },
  quiche_config_set_max_stream_window: { parameters: ["pointer", "u64"], result: "void" },
  quiche_config_set_active_connection_id_limit: { parameters: ["pointer", "u64"], result: "void" },
  quiche_config_free: { parameters: ["pointer"], result: "void" },

  // Packet header inspection and stateless server replies.
  quiche_header_info: {
    parameters: [
      "buffer", // buf
      "usize", // buf_len
      "usize", // dcil
      "buffer", // uint32_t *version
      "buffer", // uint8_t *type
      "buffer", // scid
      "buffer", // size_t *scid_len
      "buffer", // dcid
      "buffer", // size_t *dcid_len
      "buffer", // token
      "buffer", // size_t *token_len
    ],
    result: "i32",
  },
  quiche_negotiate_version: {
    parameters: ["buffer", "usize", "buffer", "usize", "buffer", "usize"],
    result: "i32",
  },
  quiche_retry: {
    parameters: [
      "buffer", // scid
      "usize",
      "buffer", // dcid
      "usize",
      "buffer", // new_scid
      "usize",
      "buffer", // token
      "usize",
      "u32", // version
      "buffer", // out
      "usize",
    ],
    result: "i32",
  },
  quiche_version_is_supported: { parameters: ["u32"], result: "bool" },

  // Connection life cycle.
  quiche_accept: {
    parameters: [
      "buffer", // scid
      "usize",
      "buffer", // odcid (may be null)
      "usize",
      "buffer", // local sockaddr
      "u32",
      "buffer", // peer sockaddr
      "u32",
      "pointer", // config
    ],
    result: "pointer",
  },
  quiche_connect: {
    parameters: [
      "buffer", // server_name (NUL-terminated)
      "buffer", // scid
      "usize",
      "buffer", // local sockaddr
      "u32",
      "buffer", // peer sockaddr
      "u32",
      "pointer", // config
    ],
    result: "pointer",
  },
  quiche_conn_free: { parameters: ["pointer"], result: "void" },
  quiche_conn_recv: { parameters: ["pointer", "buffer", "usize", "buffer"], result: "i32" },
  quiche_conn_send: { parameters: ["pointer", "buffer", "usize", "buffer"], result: "i32" },
  quiche_conn_send_on_path: {
    parameters: ["pointer", "buffer", "usize", "buffer", "u32", "buffer", "u32", "buffer"],
    result: "i32",
  },
  quiche_conn_send_quantum: { parameters: ["pointer"], result: "usize" },
  quiche_conn_timeout_as_nanos: { parameters: ["pointer"], result: "u64" },
  quiche_conn_on_timeout: { parameters: ["pointer"], result: "void" },
  quiche_conn_send_ack_eliciting: { parameters: ["pointer"], result: "i32" },
  quiche_conn_send_ack_eliciting_on_path: {
    parameters: ["pointer", "buffer", "u32", "buffer", "u32"],
    result: "i32",
  },
  quiche_conn_close: {
    parameters: ["pointer", "bool", "u64", "buffer", "usize"],
    result: "i32",
  },

  // State queries.
  quiche_conn_is_established: { parameters: ["pointer"], result: "bool" },
  quiche_conn_is_closed: { parameters: ["pointer"], result: "bool" },
  quiche_conn_is_timed_out: { parameters: ["pointer"], result: "bool" },
  quiche_conn_is_draining: { parameters: ["pointer"], result: "bool" },
  quiche_conn_is_server: { parameters: ["pointer"], result: "bool" },
  quiche_conn_peer_error: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "buffer"],
    result: "bool",
  },
  quiche_conn_local_error: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "buffer"],
    result: "bool",
  },
  quiche_conn_application_proto: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "void",
  },
  quiche_conn_peer_cert: { parameters: ["pointer", "buffer", "buffer"], result: "void" },
  quiche_conn_server_name: { parameters: ["pointer", "buffer", "buffer"], result: "void" },
  quiche_conn_trace_id: { parameters: ["pointer", "buffer", "buffer"], result: "void" },
  quiche_conn_stats: { parameters: ["pointer", "buffer"], result: "void" },
  quiche_conn_path_stats: { parameters: ["pointer", "usize", "buffer"], result: "i32" },
  quiche_conn_max_send_udp_payload_size: { parameters: ["pointer"], result: "usize" },

  // Streams.
  quiche_conn_stream_recv: {
    parameters: ["pointer", "u64", "buffer", "usize", "buffer", "buffer"],
    result: "i32",
  },
  quiche_conn_stream_send: {
    parameters: ["pointer", "u64", "buffer", "usize", "bool", "buffer"],
    result: "i32",
  },
  quiche_conn_stream_shutdown: { parameters: ["pointer", "u64", "u32", "u64"], result: "i32" },
  quiche_conn_stream_capacity: { parameters: ["pointer", "u64"], result: "i64" },
  quiche_conn_stream_readable: { parameters: ["pointer", "u64"], result: "bool" },
  quiche_conn_stream_finished: { parameters: ["pointer", "u64"], result: "bool" },
  quiche_conn_stream_readable_next: { parameters: ["pointer"], result: "i64" },
  quiche_conn_stream_writable_next: { parameters: ["pointer"], result: "i64" },

  // DATAGRAM frames (RFC 9221).
  quiche_conn_dgram_max_writable_len: { parameters: ["pointer"], result: "i32" },
  quiche_conn_dgram_recv: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  quiche_conn_dgram_send: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  quiche_conn_dgram_send_queue_len: { parameters: ["pointer"], result: "i32" },
  quiche_conn_is_dgram_send_queue_full: { parameters: ["pointer"], result: "bool" },

  // Connection IDs and paths.
  quiche_conn_new_scid: {
    parameters: ["pointer", "buffer", "usize", "buffer", "bool", "buffer"],
    result: "i32",
  },
  quiche_conn_scids_left: { parameters: ["pointer"], result: "usize" },
  quiche_conn_retired_scid_iter: { parameters: ["pointer"], result: "pointer" },
  quiche_connection_id_iter_next: { parameters: ["pointer", "buffer", "buffer"], result: "bool" },
  quiche_connection_id_iter_free: { parameters: ["pointer"], result: "void" },
  quiche_conn_available_dcids: { parameters: ["pointer"], result: "usize" },
  quiche_conn_retire_dcid: { parameters: ["pointer", "u64"], result: "i32" },
  quiche_conn_probe_path: {
    parameters: ["pointer", "buffer", "u32", "buffer", "u32", "buffer"],
    result: "i32",
  },
  quiche_conn_migrate: {
    parameters: ["pointer", "buffer", "u32", "buffer", "u32", "buffer"],
    result: "i32",
  },
  quiche_conn_path_event_next: { parameters: ["pointer"], result: "pointer" },
  quiche_path_event_type: { parameters: ["pointer"], result: "u32" },
  quiche_path_event_new: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "buffer"],
    result: "void",
  },
  quiche_path_event_validated: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "buffer"],
    result: "void",
  },
  quiche_path_event_failed_validation: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "buffer"],
    result: "void",
  },
  quiche_path_event_closed: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "buffer"],
    result: "void",
  },
  quiche_path_event_reused_source_connection_id: {
    parameters: [
      "pointer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "void",
  },
  quiche_path_event_peer_migrated: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "buffer"],
    result: "void",
  },
  quiche_path_event_pmtu_updated: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "void",
  },
  quiche_path_event_free: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;
