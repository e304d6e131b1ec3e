/**
 * Our half of the DATAGRAM benchmark: libquiche over FFI on the batched,
 * offloaded UDP socket. Same protocol as bench/deno_quic.ts: a client sends
 * fixed-size DATAGRAMs as fast as its queue takes them for `durationMs`, then
 * reports how many it sent on a stream; the server counts what it RECEIVED,
 * timed from the first to the last arrival, and answers with its counts.
 * `processes: 2` runs the server in bench/ours_quic_peer.ts on its own core.
 *
 * @module
 */
import { QuicConfig } from "../lib/quic/config.ts";
import type { Connection } from "../lib/quic/connection.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import type { ThroughputResult } from "./result.ts";

/** ALPN of the benchmark connection. */
export const OURS_BENCH_ALPN = "ztna-bench-dgram";
const QUEUES = { receiveQueue: 8192, sendQueue: 8192 };

/** Options of {@link benchOursQuic}; files because quiche loads PEM from disk. */
export interface OursQuicBenchOptions {
  payloadBytes: number;
  durationMs: number;
  certificateFile: string;
  privateKeyFile: string;
  caFile: string;
  serverName: string;
  processes?: 1 | 2;
}

/** What the receiver counted. */
export interface ReceiverCounts {
  received: number;
  bytes: number;
  firstToLastMs: number;
}

/** Starts a benchmark server; `onCounts` gets the receiver's counts once the sender is done. */
export function serveBench(
  certificateFile: string,
  privateKeyFile: string,
  onCounts?: (counts: ReceiverCounts) => void,
): { endpoint: Endpoint; config: QuicConfig } {
  const config = new QuicConfig({
    alpn: [OURS_BENCH_ALPN],
    certificateChainFile: certificateFile,
    privateKeyFile,
    verifyPeer: false,
    datagrams: QUEUES,
  });
  const endpoint = Endpoint.bind({
    address: { hostname: "127.0.0.1", port: 0 },
    server: {
      config,
      onConnection(connection) {
        const counts: ReceiverCounts = { received: 0, bytes: 0, firstToLastMs: 0 };
        let first = 0;
        connection.onDatagram((data) => {
          const now = performance.now();
          if (counts.received++ === 0) first = now;
          counts.bytes += data.length;
          counts.firstToLastMs = now - first;
        });
        connection.onStream(async (stream) => {
          const sent = Number(new TextDecoder().decode(await stream.readAll()));
          // Wait until every sent DATAGRAM arrived or 200 ms pass with nothing new.
          for (let last = -1; counts.received < sent && last !== counts.received;) {
            last = counts.received;
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
          await stream.write(new TextEncoder().encode(JSON.stringify(counts)), true);
          onCounts?.(counts);
        });
      },
    },
  });
  return { endpoint, config };
}

async function sendDatagrams(connection: Connection, payloadBytes: number, durationMs: number) {
  const payload = new Uint8Array(payloadBytes);
  let sent = 0;
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    // Fill the queue until it pushes back, then let the endpoint send and receive.
    for (let i = 0; i < 2048 && connection.sendDatagram(payload); i++) sent++;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return sent;
}

/** Runs one measurement and returns what the receiver counted. */
export async function benchOursQuic(options: OursQuicBenchOptions): Promise<ThroughputResult> {
  const local = options.processes === 2
    ? null
    : serveBench(options.certificateFile, options.privateKeyFile);
  const peer = options.processes === 2 ? await startPeerProcess(options) : null;
  const port = local?.endpoint.localAddress.port ?? peer!.port;
  const config = new QuicConfig({
    alpn: [OURS_BENCH_ALPN],
    caFile: options.caFile,
    datagrams: QUEUES,
  });
  const client = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  try {
    const connection = client.connect({
      peer: { hostname: "127.0.0.1", port },
      serverName: options.serverName,
      config,
    });
    await connection.established;
    const sent = await sendDatagrams(connection, options.payloadBytes, options.durationMs);
    const control = connection.openStream();
    const [, answer] = await Promise.all([
      control.write(new TextEncoder().encode(String(sent)), true),
      control.readAll(),
    ]);
    const counts = JSON.parse(new TextDecoder().decode(answer)) as ReceiverCounts;
    connection.close(0, "done");
    await connection.closed;
    return {
      name: `ours-${options.processes ?? 1}p`,
      packets: counts.received,
      bytes: counts.bytes,
      seconds: counts.firstToLastMs / 1000,
      sent,
    };
  } finally {
    await client.close();
    config.free();
    if (local) {
      await local.endpoint.close();
      local.config.free();
    }
    await peer?.stop();
  }
}

async function startPeerProcess(options: OursQuicBenchOptions) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("./ours_quic_peer.ts", import.meta.url).pathname,
      options.certificateFile,
      options.privateKeyFile,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const chunk = await reader.read();
    if (chunk.done) throw new Error(`benchmark peer exited: ${text}`);
    text += chunk.value;
  }
  return {
    port: Number(text.trim()),
    async stop() {
      await reader.cancel();
      await child.status;
    },
  };
}
