/** Reads a daemon's status from its admin socket (see AdminServer). */

/** No daemon answers on the admin socket. */
export class AdminUnreachableError extends Error {
  constructor(path: string, cause: string) {
    super(
      `no daemon answers on ${path} (${cause}); is it running, and is this its --admin-socket?`,
    );
    this.name = "AdminUnreachableError";
  }
}

/** Largest status document accepted. */
const MAX_STATUS_BYTES = 16 << 20;

/** Connects to `path` and returns the JSON document the daemon sends. */
export async function readStatus(path: string): Promise<unknown> {
  let connection: Deno.UnixConn;
  try {
    connection = await Deno.connect({ transport: "unix", path });
  } catch (error) {
    throw new AdminUnreachableError(path, (error as Error).message);
  }
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for await (const chunk of connection.readable) {
      total += chunk.length;
      if (total > MAX_STATUS_BYTES) throw new Error(`status from ${path} exceeds 16 MiB`);
      chunks.push(chunk);
    }
    const text = new TextDecoder().decode(concat(chunks, total));
    return JSON.parse(text);
  } finally {
    try {
      connection.close();
    } catch {
      // The daemon closed first: its document is complete.
    }
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
