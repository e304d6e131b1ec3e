/** Keeps the end of a command's output, for heartbeats and failure messages. */
export class LogTail {
  /** The last non-empty lines, oldest first. */
  readonly lines: string[] = [];
  /** The first distinct error-looking lines (at most 15). */
  readonly errors: string[] = [];
  /** The last non-empty line, without indentation. */
  last = "";
  /** When {@link last} arrived (`Date.now()`). */
  lastAt = Date.now();
  /** boring-sys's build script (the cmake build of BoringSSL) runs: its dependent has not started. */
  buildingBoringssl = false;

  /** Keeps the last `keep` lines. */
  constructor(private readonly keep = 80) {}

  /** Records one line of output. */
  add(line: string): void {
    const trimmed = line.trimEnd();
    if (trimmed === "") return;
    this.last = trimmed.trimStart();
    this.lastAt = Date.now();
    if (/Compiling boring-sys /.test(trimmed)) this.buildingBoringssl = true;
    else if (/Compiling boring v|^error/.test(this.last)) this.buildingBoringssl = false;
    this.lines.push(trimmed);
    if (this.lines.length > this.keep) this.lines.shift();
    if (
      /^\s*error\b|panicked at|Unable to find|CMake Error|fatal error/.test(trimmed) &&
      this.errors.length < 15 && !this.errors.includes(trimmed)
    ) this.errors.push(trimmed);
  }
}
