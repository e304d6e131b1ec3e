/**
 * Option values from the environment: option `--max-sessions` is read from
 * `ZTNA_MAX_SESSIONS` (upper case, `-` becomes `_`). Only the command's own
 * options are looked up, so other `ZTNA_` variables (the environment is
 * shared) are ignored. An empty variable counts as unset; a boolean is one of
 * 1/true/yes or 0/false/no; a repeatable option's variable holds its values
 * separated by spaces. `ZTNA_STATE_DIR` keeps its own meaning (where a
 * relay's state directory is when `--state-dir` is not given, see
 * lib/state_dir.ts), so it is no `--state-dir` value.
 */
import type { ParseArgsOptionsConfig } from "node:util";
import type { OptionValue } from "./config_file.ts";
import { UsageError } from "./errors.ts";
import { STATE_DIR_ENV } from "../state_dir.ts";

/** Prefix of the variables options are read from. */
export const ENV_PREFIX = "ZTNA_";

/** Options never read from the environment. */
const NOT_IN_ENV: ReadonlySet<string> = new Set(["help"]);
/** Variables with a meaning of their own, which are no option's. */
const OWN_MEANING: ReadonlySet<string> = new Set([STATE_DIR_ENV]);

/** Looks an environment variable up (undefined when unset). */
export type EnvLookup = (name: string) => string | undefined;

/** The variable option `name` is read from: `max-sessions` → `ZTNA_MAX_SESSIONS`. */
export function envVariableName(name: string): string {
  return ENV_PREFIX + name.toUpperCase().replaceAll("-", "_");
}

const TRUE_WORDS = new Set(["1", "true", "yes"]);
const FALSE_WORDS = new Set(["0", "false", "no"]);

/**
 * The values the environment gives `options` (unset and empty variables
 * are left out), with the variable each came from; a boolean variable that
 * is no boolean is a UsageError naming it.
 */
export function readEnvOptions(
  options: ParseArgsOptionsConfig,
  lookup: EnvLookup,
): { values: Record<string, OptionValue>; variables: Record<string, string> } {
  const values: Record<string, OptionValue> = {};
  const variables: Record<string, string> = {};
  for (const [name, option] of Object.entries(options)) {
    if (NOT_IN_ENV.has(name)) continue;
    const variable = envVariableName(name);
    if (OWN_MEANING.has(variable)) continue;
    const text = lookup(variable);
    if (text === undefined || text.trim() === "") continue;
    variables[name] = variable;
    if (option.type === "boolean") {
      const word = text.trim().toLowerCase();
      if (!TRUE_WORDS.has(word) && !FALSE_WORDS.has(word)) {
        throw new UsageError(`${variable}: expected true or false (1/0, yes/no), not '${text}'`);
      }
      values[name] = TRUE_WORDS.has(word);
    } else {
      values[name] = option.multiple ? text.trim().split(/\s+/) : text;
    }
  }
  return { values, variables };
}
