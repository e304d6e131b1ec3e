/**
 * The namespace harness and test identities the tunnel benchmark builds on,
 * re-exported from one place so that, should they move again, only this
 * file changes.
 *
 * @module
 */
export {
  type Child,
  createNatTopology,
  denoCommand,
  type Host,
  type NatTopology,
  Topology,
} from "../../lib/netns/mod.ts";
export { makeTestOrg, RELAY_NAME, type TestOrg } from "../../tests/support/nodes.ts";

/** The relay process the end-to-end tests use: prints `READY <port>`, relays until SIGTERM. */
export const RELAY_MAIN = new URL("../../tests/support/relay_main.ts", import.meta.url);
