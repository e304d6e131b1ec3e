/** Running short commands in the root namespace and what they leave behind. */

/** A finished command. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where and how long {@link rootCommand} runs a command; by default as this process does. */
export interface RootCommandOptions {
  cwd?: string;
  /** Variables added to this process's environment. */
  env?: Record<string, string>;
  /** Kills the command when aborted. */
  signal?: AbortSignal;
}

/** Runs a short command in the root namespace; never throws on a non-zero exit. */
export async function rootCommand(
  argv: string[],
  options: RootCommandOptions = {},
): Promise<ExecResult> {
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: options.signal,
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
