/** Errors the CLI maps to exit statuses. */

/** The command line is wrong (unknown flag, missing argument, bad value): exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Exit statuses of `ztna`. */
export const ExitCode = {
  /** Success. */
  ok: 0,
  /** The command ran and failed. */
  failure: 1,
  /** The command line was wrong. */
  usage: 2,
} as const;

/** The message of any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
