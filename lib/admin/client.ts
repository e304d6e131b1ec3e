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

/** Connects to `path` and returns the JSON document the daemon sends. */
export async function readStatus(path: string): Promise<unknown> {
  let connection: Deno.UnixConn;
  try {
    connection = await Deno.connect({ transport: "unix", path });
  } catch (error) {
    throw new AdminUnreachableError(path, (error as Error).message);
  }
  // The daemon writes one document and closes; reading to the end closes our side too.
  return JSON.parse(await new Response(connection.readable).text());
}
