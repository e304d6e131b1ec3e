/**
 * Command-line parsing on `node:util` parseArgs: strict parsing whose errors
 * become {@link UsageError}s, the global flags every command accepts, and
 * validators for option values.
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import {
  DEFAULT_LOG_OPTIONS,
  isLogFormat,
  isLogLevel,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogOptions,
} from "../log.ts";
import { UsageError } from "./errors.ts";

/** Flags accepted by every command (and before the command name). */
export const GLOBAL_OPTIONS = {
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsOptionsConfig;

/** Help text of {@link GLOBAL_OPTIONS}. */
export const GLOBAL_OPTIONS_USAGE = `Global options (before or after the command):
  --log-level LEVEL    ${LOG_LEVELS.join(", ")} (default ${DEFAULT_LOG_OPTIONS.level})
  --log-format FORMAT  ${
  LOG_FORMATS.join(" or ")
}; logs go to stderr (default ${DEFAULT_LOG_OPTIONS.format})
  -h, --help           show help`;

type WithGlobals<O extends ParseArgsOptionsConfig> = O & typeof GLOBAL_OPTIONS;

/** The result of {@link parseCommandLine} for options `O` (plus the global ones). */
export type ParsedCommandLine<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{
    args: string[];
    options: WithGlobals<O>;
    strict: true;
    allowPositionals: true;
  }>
>;

/** Turns a parseArgs error into a short usage message. */
function usageErrorFrom(error: unknown): UsageError {
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? "";
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return new UsageError(`unknown option '${quoted}'`);
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return new UsageError(`unexpected argument '${quoted}'`);
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const flag = quoted.replace(/ <value>$/, "").replace(/^-\w, /, "");
      if (/does not take an argument/.test(message)) {
        return new UsageError(`option '${flag}' does not take a value`);
      }
      return new UsageError(`option '${flag}' needs a value`);
    }
    default:
      return new UsageError(message.charAt(0).toLowerCase() + message.slice(1));
  }
}

/**
 * Parses `args` strictly against `options` and the global flags. Unknown
 * flags, missing values and (unless `allowPositionals`) positional arguments
 * throw a {@link UsageError}.
 */
export function parseCommandLine<O extends ParseArgsOptionsConfig>(
  args: string[],
  options: O,
  allowPositionals = false,
): ParsedCommandLine<O> {
  try {
    const parsed = parseArgs({
      args,
      options: { ...options, ...GLOBAL_OPTIONS },
      strict: true,
      allowPositionals: true,
    });
    if (!allowPositionals && parsed.positionals.length > 0) {
      throw new UsageError(`unexpected argument '${parsed.positionals[0]}'`);
    }
    return parsed as ParsedCommandLine<O>;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw usageErrorFrom(error);
  }
}

/** Global flag values as parsed (unset ones are undefined). */
export interface GlobalFlags {
  "log-level"?: string;
  "log-format"?: string;
}

/** Validates `--log-level` and `--log-format`; `fallback` fills unset ones. */
export function logOptionsFrom(
  flags: GlobalFlags,
  fallback: Readonly<LogOptions> = DEFAULT_LOG_OPTIONS,
): LogOptions {
  const level = flags["log-level"] ?? fallback.level;
  if (!isLogLevel(level)) {
    throw new UsageError(
      `invalid --log-level '${level}': expected one of ${LOG_LEVELS.join(", ")}`,
    );
  }
  const format = flags["log-format"] ?? fallback.format;
  if (!isLogFormat(format)) {
    throw new UsageError(`invalid --log-format '${format}': expected ${LOG_FORMATS.join(" or ")}`);
  }
  return { level, format };
}

/** The value of a required string option, or a {@link UsageError} naming it. */
export function requireOption(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") {
    throw new UsageError(`missing required option --${flag}`);
  }
  return value;
}

/** Parses an integer option within `[min, max]`; unset gives `fallback`. */
export function integerOption(
  value: string | undefined,
  flag: string,
  fallback: number,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}-${max}`;
    throw new UsageError(`invalid --${flag} '${value}': expected an integer ${range}`);
  }
  return n;
}
