/** Whether `path` is a regular file (following symlinks); `false` when it cannot be read. */
export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
