/** Subcommands of `ztna`: how one is declared, and the registry main.ts dispatches on. */
import type { ParseArgsOptionsConfig } from "node:util";
import { type GlobalFlags, parseCommandLine, type ParsedCommandLine } from "./args.ts";

/** A command whose arguments are parsed, ready to run. */
export interface PreparedCommand {
  /** `-h`/`--help` was given: print the usage instead of running. */
  help: boolean;
  /** The global flags given after the command name. */
  globals: GlobalFlags;
  /** Runs the command; throws a UsageError (exit 2) or any other error (exit 1). */
  run(): Promise<void>;
}

/** A subcommand. */
export interface Command {
  /** Help text, without the global options (the runner appends them). */
  readonly usage: string;
  /** Parses the arguments after the command name; throws a UsageError. */
  prepare(args: string[]): PreparedCommand;
}

/** Declaration of a subcommand: its options and what it does with them. */
export interface CommandSpec<O extends ParseArgsOptionsConfig> {
  /** Help text, without the global options. */
  usage: string;
  /** The command's own options (the global ones are added). */
  options: O;
  /** Accept positional arguments (default false). */
  allowPositionals?: boolean;
  /** Runs with the parsed arguments. Logging is configured before it is called. */
  run(parsed: ParsedCommandLine<O>): Promise<void>;
}

/** Makes a {@link Command} from its declaration. */
export function defineCommand<O extends ParseArgsOptionsConfig>(spec: CommandSpec<O>): Command {
  return {
    usage: spec.usage,
    prepare(args) {
      const parsed = parseCommandLine(args, spec.options, spec.allowPositionals ?? false);
      const values = parsed.values as GlobalFlags & { help?: boolean };
      return {
        help: values.help === true,
        globals: { "log-level": values["log-level"], "log-format": values["log-format"] },
        run: () => spec.run(parsed),
      };
    },
  };
}

/** One line of the command registry. */
export interface CommandEntry {
  /** One-line description shown by `ztna --help`. */
  summary: string;
  /** Loads the command's module (lazily, so `--help` loads nothing else). */
  load(): Promise<{ command: Command }>;
}

/** Commands by name. */
export type CommandRegistry = Readonly<Record<string, CommandEntry>>;
