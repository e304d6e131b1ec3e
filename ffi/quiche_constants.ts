/** Constants and C struct layouts from quiche.h (x86-64/AArch64 Linux, LP64). */

/** QUIC version 1 (RFC 9000). */
export const QUICHE_PROTOCOL_VERSION = 0x00000001;
/** Longest connection ID QUIC allows. */
export const MAX_CONN_ID_LEN = 20;
/** Minimum size of a client's first Initial datagram. */
export const MIN_CLIENT_INITIAL_LEN = 1200;

/** `enum quiche_error` values, by name. */
export const QUICHE_ERRORS: Readonly<Record<number, string>> = {
  [-1]: "Done",
  [-2]: "BufferTooShort",
  [-3]: "UnknownVersion",
  [-4]: "InvalidFrame",
  [-5]: "InvalidPacket",
  [-6]: "InvalidState",
  [-7]: "InvalidStreamState",
  [-8]: "InvalidTransportParam",
  [-9]: "CryptoFail",
  [-10]: "TlsFail",
  [-11]: "FlowControl",
  [-12]: "StreamLimit",
  [-13]: "FinalSize",
  [-14]: "CongestionControl",
  [-15]: "StreamStopped",
  [-16]: "StreamReset",
  [-17]: "IdLimit",
  [-18]: "OutOfIdentifiers",
  [-19]: "KeyUpdate",
  [-20]: "CryptoBufferExceeded",
  [-21]: "InvalidAckRange",
  [-22]: "OptimisticAckDetected",
  [-23]: "InvalidDcidInitialization",
};
/** quiche's "nothing more to do" result. */
export const QUICHE_ERR_DONE = -1;
/** The stream was stopped by the peer (STOP_SENDING). */
export const QUICHE_ERR_STREAM_STOPPED = -15;
/** The stream was reset by the peer (RESET_STREAM). */
export const QUICHE_ERR_STREAM_RESET = -16;

/** `enum quiche_path_event_type`. */
export const PathEventType = {
  New: 0,
  Validated: 1,
  FailedValidation: 2,
  Closed: 3,
  ReusedSourceConnectionId: 4,
  PeerMigrated: 5,
  PmtuUpdated: 6,
} as const;

/** `enum quiche_shutdown`. */
export const Shutdown = { Read: 0, Write: 1 } as const;

/** Packet types reported by `quiche_header_info`. */
export const PacketType = {
  Initial: 1,
  Retry: 2,
  Handshake: 3,
  ZeroRtt: 4,
  Short: 5,
  VersionNegotiation: 6,
} as const;

/** `struct sockaddr_storage` size. */
export const SOCKADDR_STORAGE_SIZE = 128;

/** `quiche_recv_info`: two sockaddr pointers with their lengths. */
export const RecvInfo = { size: 32, from: 0, fromLen: 8, to: 16, toLen: 24 } as const;

/** `quiche_send_info`: from/to sockaddr_storage and the pacing time. */
export const SendInfo = { size: 288, from: 0, fromLen: 128, to: 136, toLen: 264, at: 272 } as const;

/** `quiche_stats` (all fields 8 bytes wide, then one bool). */
export const Stats = {
  size: 208,
  recv: 0,
  sent: 8,
  lost: 16,
  spuriousLost: 24,
  retrans: 32,
  sentBytes: 40,
  recvBytes: 48,
  ackedBytes: 56,
  lostBytes: 64,
  streamRetransBytes: 72,
  dgramRecv: 80,
  dgramSent: 88,
  pathsCount: 96,
  pathChallengeRxCount: 184,
} as const;

/** `quiche_path_stats`. */
export const PathStats = {
  size: 448,
  localAddr: 0,
  localAddrLen: 128,
  peerAddr: 136,
  peerAddrLen: 264,
  validationState: 272,
  active: 280,
  recv: 288,
  sent: 296,
  lost: 304,
  retrans: 312,
  totalPtoCount: 320,
  dgramRecv: 328,
  dgramSent: 336,
  rtt: 344,
  minRtt: 352,
  maxRtt: 360,
  rttvar: 368,
  cwnd: 376,
  sentBytes: 384,
  recvBytes: 392,
  lostBytes: 400,
  streamRetransBytes: 408,
  pmtu: 416,
  deliveryRate: 424,
  maxBandwidth: 432,
  startupExitCwnd: 440,
} as const;
