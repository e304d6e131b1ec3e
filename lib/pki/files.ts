/** Small file-system helpers for identity and CA directories. */

/** True when `path` exists (any kind of file); other errors propagate. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Creates `dir` (and its parents) if missing; a new directory gets `mode`
 * (0700 by default: identity directories hold private keys). An existing one is left as is.
 */
export async function ensureDir(dir: string, mode = 0o700): Promise<void> {
  if (await exists(dir)) return;
  try {
    await Deno.mkdir(dir, { recursive: true, mode });
    if (Deno.build.os !== "windows") await Deno.chmod(dir, mode);
  } catch (error) {
    throw new Error(`cannot create directory ${dir}: ${(error as Error).message}`);
  }
}

/** Reads a text file; the error names the file and what it was for. */
export async function readText(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}
