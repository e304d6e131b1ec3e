/** Subcommands of `ztna`: how one is declared, and the registry main.ts dispatches on. */
import type { ParseArgsOptionsConfig } from "node:util";
import {
  GLOBAL_OPTIONS,
  type GlobalFlags,
  logOptionsFrom,
  parseCommandLine,
  type ParsedCommandLine,
} from "./args.ts";
import { type ConfigFileValues, type OptionValue, readConfigFile } from "./config_file.ts";
import { type EnvLookup, readEnvOptions } from "./env_options.ts";
import { UsageError } from "./errors.ts";
import type { LogOptions } from "../log.ts";

/** A command whose arguments are parsed, ready to run. */
export interface PreparedCommand {
  /** `-h`/`--help` was given: print the usage instead of running. */
  help: boolean;
  /** The global flags given after the command name. */
  globals: GlobalFlags;
  /**
   * The log options the environment and the configuration file give (checked), which flags
   * (after or before the command name) override; default DEFAULT_LOG_OPTIONS.
   */
  logDefaults?: LogOptions;
  /** Runs the command; throws a UsageError (exit 2) or any other error (exit 1). */
  run(): Promise<void>;
}

/** A subcommand. */
export interface Command {
  /** Help text, without the global options (the runner appends them). */
  readonly usage: string;
  /**
   * Parses the arguments after the command name (and, for a command with `config`, the
   * `ZTNA_` variables `env` looks up and the `--config` file); throws a UsageError.
   */
  prepare(args: string[], env?: EnvLookup): PreparedCommand;
}

/** What a command's `run` is given: the merged option values, and the configuration file read. */
export type CommandInput<O extends ParseArgsOptionsConfig> = ParsedCommandLine<O> & {
  /** The `--config` file, if one was read (its table keys included). */
  configFile?: ConfigFileValues;
  /**
   * Merges the same flags and variables with the config file as it is now (a daemon's
   * reload); throws a UsageError naming a bad key or file. Absent without `config`.
   */
  reread?: () => Pick<CommandInput<O>, "values" | "configFile">;
};

/** Declaration of a subcommand: its options and what it does with them. */
export interface CommandSpec<O extends ParseArgsOptionsConfig> {
  /** Help text, without the global options. */
  usage: string;
  /** The command's own options (the global ones are added). */
  options: O;
  /** Accept positional arguments (default false). */
  allowPositionals?: boolean;
  /**
   * Every option may also come from `ZTNA_<OPTION>` variables and a `--config FILE` (TOML),
   * flags first, then variables, then the file. `tables` are file keys the command reads
   * itself from `configFile.tables` (TOML tables).
   */
  config?: true | { tables: readonly string[] };
  /** Runs with the parsed arguments. Logging is configured before it is called. */
  run(parsed: CommandInput<O>): Promise<void>;
}

/** parseArgs declaration of `--config`. */
const CONFIG_OPTION = { config: { type: "string" } } as const satisfies ParseArgsOptionsConfig;

/** Usage line of `--config`, appended to a configurable command's usage. */
export const CONFIG_USAGE =
  `  --config FILE        read options from a TOML file: keys are the option names
                       (max-sessions = 100; booleans true/false, repeatable
                       options as arrays); each option may also come from
                       ZTNA_<OPTION> (ZTNA_MAX_SESSIONS=100, repeated values
                       separated by spaces); flags win over variables, variables
                       over the file`;

/** Where an option's value came from, for error messages; flags are not recorded. */
type OptionSources = Record<string, string>;

/**
 * Prefixes a UsageError about an option that came from a variable or the file with its
 * source (`ZTNA_MAX_SESSIONS: invalid --max-sessions ...`); other errors pass unchanged.
 */
function attributed(error: unknown, sources: OptionSources): unknown {
  if (!(error instanceof UsageError)) return error;
  for (const [, name] of error.message.matchAll(/--([a-z][a-z0-9-]*)/g)) {
    if (Object.hasOwn(sources, name)) return new UsageError(`${sources[name]}: ${error.message}`);
  }
  return error;
}

/** Option values merged from the file, the environment and the flags, with their sources. */
interface MergedOptions {
  values: Record<string, OptionValue>;
  sources: OptionSources;
  configFile?: ConfigFileValues;
}

/** Merges flags over `ZTNA_` variables over the `--config` file (named by a flag or variable). */
function mergeSources(
  flags: Record<string, OptionValue | undefined>,
  options: ParseArgsOptionsConfig,
  tables: readonly string[],
  env: EnvLookup,
): MergedOptions {
  const all = { ...options, ...GLOBAL_OPTIONS };
  const fromEnv = readEnvOptions(all, env);
  const path = (flags.config ?? fromEnv.values.config) as string | undefined;
  const configFile = path === undefined ? undefined : readConfigFile(path, all, tables);
  const values: Record<string, OptionValue> = {};
  const sources: OptionSources = {};
  for (const [name, value] of Object.entries(configFile?.values ?? {})) {
    values[name] = value;
    sources[name] = `${path}: key "${name}"`;
  }
  for (const [name, value] of Object.entries(fromEnv.values)) {
    values[name] = value;
    sources[name] = fromEnv.variables[name];
  }
  for (const [name, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    values[name] = value;
    delete sources[name];
  }
  return { values, sources, configFile };
}

/** Log options from values that came from variables or the file (checked, naming the source). */
function logDefaultsFrom(merged: MergedOptions): LogOptions {
  const fallback: GlobalFlags = {};
  for (const key of ["log-level", "log-format"] as const) {
    const value = merged.values[key];
    if (typeof value === "string" && Object.hasOwn(merged.sources, key)) fallback[key] = value;
  }
  try {
    return logOptionsFrom(fallback);
  } catch (error) {
    throw attributed(error, merged.sources);
  }
}

/** Makes a {@link Command} from its declaration. */
export function defineCommand<O extends ParseArgsOptionsConfig>(spec: CommandSpec<O>): Command {
  const options = spec.config ? { ...spec.options, ...CONFIG_OPTION } : spec.options;
  const tables = typeof spec.config === "object" ? spec.config.tables : [];
  return {
    usage: spec.config ? `${spec.usage}\n${CONFIG_USAGE}` : spec.usage,
    prepare(args, env = (name) => Deno.env.get(name)) {
      const parsed = parseCommandLine(args, options, spec.allowPositionals ?? false);
      const flags = parsed.values as GlobalFlags & { help?: boolean };
      const help = flags.help === true;
      const globals = { "log-level": flags["log-level"], "log-format": flags["log-format"] };
      if (!spec.config || help) {
        return { help, globals, run: () => spec.run(parsed as ParsedCommandLine<O>) };
      }
      const merged = mergeSources(parsed.values, options, tables, env);
      const reread = () => {
        const now = mergeSources(parsed.values, options, tables, env);
        return { values: now.values, configFile: now.configFile } as Pick<
          CommandInput<O>,
          "values" | "configFile"
        >;
      };
      const input = {
        ...parsed,
        values: merged.values,
        configFile: merged.configFile,
        reread,
      } as CommandInput<O>;
      return {
        help,
        globals,
        logDefaults: logDefaultsFrom(merged),
        run: async () => {
          try {
            await spec.run(input);
          } catch (error) {
            throw attributed(error, merged.sources);
          }
        },
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
