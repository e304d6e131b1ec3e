/**
 * A daemon's TOML configuration file (`--config FILE`): its keys are the
 * command's option names (`relay = "203.0.113.5:4433"`, `max-sessions = 100`),
 * checked against the command's options and turned into the values parseArgs
 * would give. Booleans are TOML booleans; other options take a string or an
 * integer; repeatable options take an array (or one value). Keys a command
 * declares as tables (the connector's `[services.NAME]`) are handed over raw.
 * Every error names the file and the key.
 */
import type { ParseArgsOptionsConfig } from "node:util";
import { parse, TomlError } from "smol-toml";
import { UsageError } from "./errors.ts";

/** One option value as parseArgs gives it. */
export type OptionValue = string | boolean | string[];

/** What a configuration file holds: option values by name, and the tables it may carry. */
export interface ConfigFileValues {
  /** The file's path, as given. */
  file: string;
  /** Option values by option name. */
  values: Record<string, OptionValue>;
  /** The raw contents of the command's table keys that the file sets. */
  tables: Record<string, unknown>;
}

/** Options never read from a file: `help`, and `config` itself. */
export const NOT_IN_FILES: ReadonlySet<string> = new Set(["help", "config"]);

/** Reads and parses the TOML file at `path`; a UsageError names the file and the problem. */
export function readTomlFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (error as Error).message;
    throw new UsageError(`${path}: cannot read the configuration file: ${reason}`);
  }
  try {
    return parse(text);
  } catch (error) {
    if (error instanceof TomlError) {
      const reason = error.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
      throw new UsageError(
        `${path}: invalid TOML at line ${error.line}, column ${error.column}: ${reason}`,
      );
    }
    throw new UsageError(`${path}: invalid TOML: ${(error as Error).message}`);
  }
}

/** A TOML scalar as an option string: strings as they are, integers in decimal. */
function scalarText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number" && Number.isInteger(value)) return String(value);
  return undefined;
}

/** Describes a TOML value's type for an error message. */
function typeName(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a float";
  if (typeof value === "object" && value !== null) return "a table";
  return `a ${typeof value}`;
}

/** Checks one key's value against its option declaration. */
function optionValue(
  key: string,
  value: unknown,
  option: ParseArgsOptionsConfig[string],
  file: string,
): OptionValue {
  const wrong = (expected: string) =>
    new UsageError(`${file}: key "${key}" must be ${expected}, not ${typeName(value)}`);
  if (option.type === "boolean") {
    if (typeof value !== "boolean") throw wrong("a boolean (true or false)");
    return value;
  }
  if (option.multiple) {
    const items = Array.isArray(value) ? value : [value];
    return items.map((item) => {
      const text = scalarText(item);
      if (text === undefined) throw wrong("a string, an integer or an array of them");
      return text;
    });
  }
  const text = scalarText(value);
  if (text === undefined) throw wrong("a string or an integer");
  return text;
}

/**
 * Reads the configuration file at `path` for a command with `options`;
 * `tables` are keys the command reads itself (their values must be TOML
 * tables). An unknown key or a value of the wrong type is a UsageError naming
 * the file and the key.
 */
export function readConfigFile(
  path: string,
  options: ParseArgsOptionsConfig,
  tables: readonly string[] = [],
): ConfigFileValues {
  const document = readTomlFile(path);
  const values: Record<string, OptionValue> = {};
  const tableValues: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(document)) {
    if (tables.includes(key)) {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new UsageError(`${path}: key "${key}" must be a table, not ${typeName(value)}`);
      }
      tableValues[key] = value;
      continue;
    }
    if (!Object.hasOwn(options, key) || NOT_IN_FILES.has(key)) {
      throw new UsageError(`${path}: unknown key "${key}"`);
    }
    values[key] = optionValue(key, value, options[key], path);
  }
  return { file: path, values, tables: tableValues };
}
