/** Running short commands in the root namespace and what they leave behind. */

/** A finished command. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a short command in the root namespace; never throws on a non-zero exit. */
export async function rootCommand(argv: string[]): Promise<ExecResult> {
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
