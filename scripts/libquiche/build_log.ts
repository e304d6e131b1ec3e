/** The build's log file, shared by the output streams of every command. */
import { SetupError } from "./setup_error.ts";

/** An open log file; writes from several streams land in the order they are made. */
export class BuildLog {
  private readonly encoder = new TextEncoder();

  private constructor(private readonly writer: WritableStreamDefaultWriter<Uint8Array>) {}

  /** Creates (or truncates) the log file at `path`. */
  static async create(path: string): Promise<BuildLog> {
    try {
      const file = await Deno.open(path, { write: true, create: true, truncate: true });
      return new BuildLog(file.writable.getWriter());
    } catch (error) {
      throw new SetupError(`cannot write the build log ${path}: ${(error as Error).message}`);
    }
  }

  /** Queues `text` for writing. */
  write(text: string): void {
    // A failed write errors the stream, and close() reports it.
    this.writer.write(this.encoder.encode(text)).catch(() => {});
  }

  /** Waits for queued writes and closes the file. */
  async close(): Promise<void> {
    await this.writer.close();
  }
}
