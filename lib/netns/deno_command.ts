/** Starting Deno scripts of this repository in child processes (ztna run from source). */

/** The repository's deno.json, so scripts resolve the import map wherever they run. */
export const DENO_CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** The argv of `deno run` for `script` with all permissions and this repository's config. */
export function denoCommand(script: string | URL, args: string[] = []): string[] {
  const path = script instanceof URL ? script.pathname : script;
  return [Deno.execPath(), "run", "-A", "--unstable-net", "--config", DENO_CONFIG, path, ...args];
}
