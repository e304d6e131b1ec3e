/**
 * `ztna probe KIND ...`: checks from the command line. Each kind is one module with its own
 * options (lib/probe/*_command.ts); adding one is one line in PROBES.
 */
import { parseCommandLine } from "../lib/cli/args.ts";
import type { Command, PreparedCommand } from "../lib/cli/command.ts";
import { UsageError } from "../lib/cli/errors.ts";
import { command as natType } from "../lib/probe/nat_type_command.ts";
import { command as ping } from "../lib/probe/ping_command.ts";
import { command as quic } from "../lib/probe/quic_command.ts";

/** The probe kinds, by the word after `ztna probe`. */
const PROBES: Readonly<Record<string, Command>> = { quic, "nat-type": natType, ping };

const available = () => `available: ${Object.keys(PROBES).join(", ")}`;

/** The `probe` command: dispatches to the kind named by its first argument. */
export const command: Command = {
  usage: Object.values(PROBES).map((probe) => probe.usage).join("\n\n"),
  prepare(args: string[]): PreparedCommand {
    const [name, ...rest] = args;
    const probe = name !== undefined && Object.hasOwn(PROBES, name) ? PROBES[name] : undefined;
    if (probe) return probe.prepare(rest);
    const parsed = parseCommandLine(name?.startsWith("-") ? args : [], {}, true);
    const values = parsed.values as { help?: boolean; "log-level"?: string; "log-format"?: string };
    // Failing in run(), not here, lets `ztna --help probe` print the usage.
    const problem = name === undefined || name.startsWith("-")
      ? `missing what to probe (${available()})`
      : `unknown probe '${name}' (${available()})`;
    return {
      help: values.help === true,
      globals: { "log-level": values["log-level"], "log-format": values["log-format"] },
      run: () => Promise.reject(new UsageError(problem)),
    };
  },
};
