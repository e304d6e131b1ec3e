/**
 * A user-space TCP endpoint for the connector: it accepts (passive open only) the connections
 * agents' kernels open, from raw IPv4/IPv6 packets, and exposes each as a pair of byte
 * streams with back-pressure, ready to bridge to a real socket. Outgoing segments are handed
 * back as IP packets. See `TcpStack`.
 */
export { bridge, type BridgeSocket } from "./bridge.ts";
export type { TcpConfig, TcpTuning } from "./config.ts";
export { TcpConnection } from "./connection.ts";
export type { TcpCounters } from "./counters.ts";
export { TcpConnectionError, type TcpErrorCode } from "./errors.ts";
export { describeFlow, type TcpFlow } from "./flow.ts";
export { TcpStack, type TcpStackOptions } from "./stack.ts";
export type { TcpState } from "./state.ts";
export { type TcpSharedBudget, UNLIMITED_BUDGET } from "./receive_budget.ts";
export {
  type BudgetRefusal,
  DEFAULT_RECEIVE_FLOOR,
  SharedTcpBudget,
  type SharedTcpBudgetOptions,
  type SharedTcpBudgetStats,
} from "./shared_budget.ts";
