/**
 * A kernel-TCP echo server for the lib/tcp namespace tests:
 * `deno run -A tcp_echo_main.ts` listens on 127.0.0.1 (any port), prints `READY <port>`, and
 * echoes every connection until the client finishes sending, then half-closes (FIN). A
 * connection whose first bytes are `QUIT` gets `bye` and our FIN at once instead (the server
 * closes first), then is closed when the client's FIN arrives.
 */
import { writeAll } from "./tcp_io.ts";

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(`READY ${(listener.addr as Deno.NetAddr).port}`);
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));

for await (const conn of listener) void serve(conn);

async function serve(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    let first = true;
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      if (first && new TextDecoder().decode(buffer.subarray(0, Math.min(n, 4))) === "QUIT") {
        await writeAll(conn, new TextEncoder().encode("bye\n"));
        break;
      }
      first = false;
      await writeAll(conn, buffer.subarray(0, n));
    }
    await conn.closeWrite();
    await conn.read(buffer).catch(() => null); // wait for the peer's FIN before closing
  } catch {
    // The client reset or went away; nothing to echo any more.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}
