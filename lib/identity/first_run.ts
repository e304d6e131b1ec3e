/** The guide `ztna relay` prints when it has just created its CA or identity. */
import { caFiles } from "./ca_dir.ts";
import { nextStepCommands, type RelayState } from "./relay_state.ts";

/** The first-run guide: what was created where, the next commands, the production set-up. */
export function formatFirstRunGuide(state: RelayState, stateDir: string, hosts: string[]): string {
  const ca = caFiles(state.caDir);
  const created = state.createdCa
    ? "created a CA and the relay's identity"
    : `issued the relay's identity from the CA in ${state.caDir}`;
  return [
    `ztna relay: first run in ${stateDir}: ${created}`,
    `  CA certificate   ${ca.certPath}`,
    `  CA private key   ${ca.keyPath}`,
    `  relay identity   ${state.files.certificateFile} (hosts: ${hosts.join(", ")})`,
    "",
    "Next, issue identities for your nodes (pick your own names and services):",
    ...nextStepCommands(state.caDir).map((command) => `  ${command}`),
    "Copy each output directory (NAME.crt, NAME.key, ca.crt) to its node, which then takes",
    "--cert NAME.crt --key NAME.key --ca ca.crt, --relay with this relay's address and",
    `--relay-name with one of its host names: ${hosts.join(", ")}.`,
    "",
    `Production: move ${ca.keyPath} off this machine and issue identities where it is`,
    `kept. The relay needs only ${state.relayDir} (its identity and ca.crt), so it cannot`,
    "mint identities or grant itself rights.",
  ].join("\n");
}
