/**
 * A kernel-TCP echo server on a given address: `deno run -A tcp_echo_any_main.ts HOST PORT`
 * prints `READY`, echoes every connection until the client half-closes, then half-closes.
 */
import { writeAll } from "./tcp_io.ts";

const [hostname, port] = Deno.args;
const listener = Deno.listen({ hostname, port: Number(port) });
console.log("READY");
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));

for await (const conn of listener) void serve(conn);

async function serve(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(256 * 1024);
  try {
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      await writeAll(conn, buffer.subarray(0, n));
    }
    await conn.closeWrite();
  } catch {
    // The client went away: nothing to echo to.
  } finally {
    conn.close();
  }
}
