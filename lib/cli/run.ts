/**
 * The `ztna` command line: global flags, `--help` and `--version`, dispatch to
 * a registered command, and the mapping of outcomes to exit statuses
 * (0 success, 1 failure, 2 usage error). Expected failures print one line on
 * stderr; the stack of an error is only logged at debug level.
 */
import { getLogger } from "@logtape/logtape";
import { parseArgs } from "node:util";
import { libquicheInfo } from "../../ffi/quiche.ts";
import { configureLogging, type LogOptions } from "../log.ts";
import { VERSION } from "../version.ts";
import {
  GLOBAL_OPTIONS,
  GLOBAL_OPTIONS_USAGE,
  type GlobalFlags,
  logOptionsFrom,
  parseCommandLine,
} from "./args.ts";
import type { Command, CommandRegistry, PreparedCommand } from "./command.ts";
import { errorMessage, ExitCode, UsageError } from "./errors.ts";

/** The executable's name, as shown in messages. */
export const PROGRAM = "ztna";

const log = getLogger(["ztna", "cli"]);

/** Flags accepted before the command name only. */
const TOP_OPTIONS = { version: { type: "boolean" } } as const;

/** The text of `ztna --help`. */
export function programUsage(registry: CommandRegistry): string {
  const names = Object.keys(registry);
  const width = Math.max(...names.map((name) => name.length));
  const commands = names.map((name) => `  ${name.padEnd(width)}  ${registry[name].summary}`);
  return [
    `Usage: ${PROGRAM} [global options] <command> [arguments] [options]`,
    `       ${PROGRAM} --version`,
    "",
    `${PROGRAM} ${VERSION}: zero-trust network access toolkit on QUIC (libquiche).`,
    "",
    "Commands:",
    ...commands,
    "",
    GLOBAL_OPTIONS_USAGE,
    "  --version            print ztna's and libquiche's versions (before a command only)",
    "",
    `Run '${PROGRAM} <command> --help' for a command's arguments and options.`,
    "Exit status: 0 success, 1 failure, 2 usage error.",
  ].join("\n");
}

/** The text of `ztna <command> --help`. */
export function commandUsage(command: Command): string {
  return `${command.usage}\n\n${GLOBAL_OPTIONS_USAGE}`;
}

/** Prints a usage error for `label` ("ztna" or "ztna <command>") and returns exit status 2. */
function usageFailure(label: string, error: unknown): number {
  console.error(`${label}: ${errorMessage(error)}`);
  console.error(`Run '${label} --help' for usage.`);
  return ExitCode.usage;
}

/** Prints `ztna` and libquiche versions; exit status 1 when libquiche cannot be loaded. */
function printVersion(): number {
  console.log(`${PROGRAM} ${VERSION}`);
  try {
    const quiche = libquicheInfo();
    console.log(`libquiche ${quiche.version} (${quiche.path})`);
    return ExitCode.ok;
  } catch (error) {
    console.error(`${PROGRAM}: ${errorMessage(error)}`);
    return ExitCode.failure;
  }
}

/** Splits argv at the command name: flags before it, the name, and what follows. */
function splitAtCommand(argv: string[]): { before: string[]; name?: string; rest: string[] } {
  const { tokens } = parseArgs({
    args: argv,
    options: { ...GLOBAL_OPTIONS, ...TOP_OPTIONS },
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const first = tokens.find((token) => token.kind === "positional");
  if (!first) return { before: argv, rest: [] };
  return {
    before: argv.slice(0, first.index),
    name: first.value,
    rest: argv.slice(first.index + 1),
  };
}

/** Runs the command line `argv` against `registry`; returns the exit status. */
export async function runCli(argv: string[], registry: CommandRegistry): Promise<number> {
  const split = splitAtCommand(argv);
  let top: GlobalFlags & { help?: boolean; version?: boolean };
  try {
    const parsed = parseCommandLine(split.before, TOP_OPTIONS);
    top = parsed.values;
    logOptionsFrom(top); // A bad one is the program's usage error, before loading the command.
  } catch (error) {
    return usageFailure(PROGRAM, error);
  }
  if (top.version) return printVersion();
  if (split.name === undefined) {
    if (top.help) {
      console.log(programUsage(registry));
      return ExitCode.ok;
    }
    console.error(programUsage(registry));
    return ExitCode.usage;
  }
  const name = split.name;
  const entry = Object.hasOwn(registry, name) ? registry[name] : undefined;
  if (!entry) {
    const known = Object.keys(registry).join(", ");
    return usageFailure(PROGRAM, new UsageError(`unknown command '${name}' (commands: ${known})`));
  }
  const label = `${PROGRAM} ${name}`;
  const { command } = await entry.load();
  let prepared: PreparedCommand;
  let logOptions: LogOptions;
  try {
    prepared = command.prepare(split.rest);
    if (prepared.help || top.help) {
      console.log(commandUsage(command));
      return ExitCode.ok;
    }
    // Flags after the command name, then before it, then its variables and configuration file.
    logOptions = logOptionsFrom(prepared.globals, logOptionsFrom(top, prepared.logDefaults));
  } catch (error) {
    return usageFailure(label, error);
  }
  configureLogging(logOptions);
  try {
    await prepared.run();
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof UsageError) return usageFailure(label, error);
    log.debug("{command} failed: {error}", { command: label, error });
    console.error(`${label}: ${errorMessage(error)}`);
    return ExitCode.failure;
  }
}
