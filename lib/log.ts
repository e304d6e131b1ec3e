/**
 * Process-wide logging for the ztna executable: LogTape configured once, every
 * record written to stderr, as human-readable lines or as JSON Lines.
 * Libraries under lib/ only call `getLogger(["ztna", ...])`; this decides where
 * their records go.
 */
import {
  configureSync,
  getAnsiColorFormatter,
  getConsoleSink,
  getJsonLinesFormatter,
  getLogLevels,
  getTextFormatter,
  type LogLevel,
  type TextFormatter,
} from "@logtape/logtape";

/** Log levels, most verbose first. */
export const LOG_LEVELS: readonly LogLevel[] = getLogLevels();

/** Output formats of log records. */
export const LOG_FORMATS = ["text", "json"] as const;

/** An output format of log records. */
export type LogFormat = typeof LOG_FORMATS[number];

/** How to log. */
export interface LogOptions {
  /** Lowest level written. */
  level: LogLevel;
  /** `text`: human-readable lines; `json`: one JSON object per line. */
  format: LogFormat;
}

/** The defaults of `--log-level` and `--log-format`. */
export const DEFAULT_LOG_OPTIONS: Readonly<LogOptions> = { level: "info", format: "text" };

/** True when `value` is one of {@link LOG_LEVELS}. */
export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/** True when `value` is one of {@link LOG_FORMATS}. */
export function isLogFormat(value: string): value is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(value);
}

function formatterFor(format: LogFormat): TextFormatter {
  if (format === "json") return getJsonLinesFormatter();
  const colors = Deno.stderr.isTerminal() && !Deno.noColor;
  // Values as they are (`session web: direct 198.51.100.7:40211`), not quoted.
  return colors ? getAnsiColorFormatter({ value: "bare" }) : getTextFormatter({ value: "bare" });
}

/**
 * Sends the `ztna` logger tree (and LogTape's own warnings) to stderr at
 * `options.level` and above. Call once per process; a second call throws.
 */
export function configureLogging(options: LogOptions): void {
  // Every level goes to console.error, which Deno writes to stderr synchronously,
  // so no record is lost when the process exits right after logging it.
  const levelMap = Object.fromEntries(LOG_LEVELS.map((level) => [level, "error" as const]));
  configureSync({
    sinks: {
      stderr: getConsoleSink({
        formatter: formatterFor(options.format),
        levelMap: levelMap as Record<LogLevel, "error">,
      }),
    },
    loggers: [
      { category: ["ztna"], lowestLevel: options.level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}
