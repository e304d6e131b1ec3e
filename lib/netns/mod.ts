/**
 * Network namespaces as real hosts on one machine (root): topologies of
 * namespaces, veth links and NAT routers, the processes run inside them, and
 * a teardown that leaves nothing behind.
 */
export { type Child, spawnChild, type SpawnOptions, type StderrMode } from "./child.ts";
export { DENO_CONFIG, denoCommand } from "./deno_command.ts";
export type { ExecResult } from "./root_command.ts";
export { LineLog } from "./line_log.ts";
export {
  blackhole,
  createNatLab,
  flushConntrack,
  type NatKind,
  type NatLab,
  readdress,
  type Site,
  type SiteSpec,
  unblackhole,
} from "./nat_lab.ts";
export { createNatTopology, NAT_ADDRESSES, type NatTopology } from "./nat_topology.ts";
export { type Host, type Link, type LinkOptions, type RunOptions, Topology } from "./topology.ts";
