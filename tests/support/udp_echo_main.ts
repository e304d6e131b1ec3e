/**
 * UDP helper for namespace tests.
 * `serve PORT`: prints `READY`, then answers each datagram with the source
 * address it saw, as `HOST:PORT`, until SIGTERM.
 * `ask HOST PORT`: sends one datagram (retrying three times, 1 s apart),
 * prints the reply and exits 0; exits 1 if no reply comes.
 */
const [mode, ...args] = Deno.args;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

if (mode === "serve") {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: +args[0] });
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  console.log("READY");
  for await (const [, from] of socket) {
    const peer = from as Deno.NetAddr;
    await socket.send(encoder.encode(`${peer.hostname}:${peer.port}`), peer);
  }
} else if (mode === "ask") {
  const [hostname, port] = args;
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  const target: Deno.NetAddr = { transport: "udp", hostname, port: +port };
  const reply = socket.receive().then(([data]) => decoder.decode(data));
  for (let attempt = 0; attempt < 3; attempt++) {
    await socket.send(encoder.encode("hello"), target);
    const timer = new Promise<null>((resolve) => setTimeout(() => resolve(null), 1000));
    const text = await Promise.race([reply, timer]);
    if (text !== null) {
      console.log(text);
      Deno.exit(0);
    }
  }
  console.error(`no reply from ${hostname}:${port}`);
  Deno.exit(1);
} else {
  console.error("usage: udp_echo_main.ts serve PORT | ask HOST PORT");
  Deno.exit(2);
}
