/**
 * A daemon's local admin endpoint: a Unix socket, owner-only (mode 0600 in a
 * 0700 directory it creates), that answers every connection with one JSON
 * document, the daemon's status, and closes. `ztna status` reads it. A stale
 * socket file (no one listening) is replaced; a live one is an error, so two
 * daemons never fight over one path.
 */
import { getLogger } from "@logtape/logtape";
import { dirname } from "node:path";

const log = getLogger(["ztna", "admin"]);

/** Another daemon already answers on the socket path. */
export class AdminSocketInUseError extends Error {
  constructor(path: string) {
    super(`admin socket ${path} is in use by another running daemon (give --admin-socket PATH)`);
    this.name = "AdminSocketInUseError";
  }
}

/** The status document now, or a promise of it (when some figures must be read first). */
export type StatusSource = () => unknown;

/** A listening admin socket. */
export class AdminServer {
  /** The socket's path. */
  readonly path: string;
  readonly #listener: Deno.Listener;
  readonly #serving: Promise<void>;

  private constructor(path: string, listener: Deno.Listener, status: StatusSource) {
    this.path = path;
    this.#listener = listener;
    this.#serving = this.#serve(status);
  }

  /** Listens on `path`; every connection gets `JSON.stringify(await status())` and a newline. */
  static async listen(path: string, status: StatusSource): Promise<AdminServer> {
    const dir = dirname(path);
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    if (await answers(path)) throw new AdminSocketInUseError(path);
    await Deno.remove(path).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    let listener: Deno.Listener;
    try {
      listener = Deno.listen({ transport: "unix", path });
    } catch (error) {
      // Another daemon bound it between our check and now (two started at once).
      if (error instanceof Deno.errors.AddrInUse) throw new AdminSocketInUseError(path);
      throw error;
    }
    await Deno.chmod(path, 0o600);
    log.debug("admin socket at {path}", { path });
    return new AdminServer(path, listener, status);
  }

  async #serve(status: StatusSource): Promise<void> {
    for await (const connection of this.#listener) {
      void (async () => {
        try {
          const body = new TextEncoder().encode(`${JSON.stringify(await status())}\n`);
          for (let offset = 0; offset < body.length;) {
            offset += await connection.write(body.subarray(offset));
          }
        } catch (error) {
          log.debug("admin client: {error}", { error: String(error) });
        } finally {
          connection.close();
        }
      })();
    }
  }

  /** Stops listening and removes the socket file. */
  async close(): Promise<void> {
    this.#listener.close();
    await this.#serving.catch(() => {});
    await Deno.remove(this.path).catch(() => {});
  }
}

/** True if a process answers on the Unix socket `path`. */
async function answers(path: string): Promise<boolean> {
  try {
    const connection = await Deno.connect({ transport: "unix", path });
    connection.close();
    return true;
  } catch {
    return false;
  }
}
