/**
 * Run inside a test namespace as root: `deno run -A tcp_tun_main.ts --forward HOST:PORT
 * [--mtu N] [--loss P --reorder P --delay MS] [--time-wait MS]` creates TUN `ztcp0`
 * (10.77.0.1/24 and fd77::1/64, so 10.77.0.0/24 and fd77::/64 route into it), runs a
 * `TcpStack` on the packets read from it (replies written back), and bridges every accepted
 * connection to a kernel TCP connection to HOST:PORT. With `--loss`/`--reorder`/`--delay`,
 * packets in both directions are impaired like netem would. Prints `READY ztcp0`; on SIGUSR2
 * prints `STATS <json>` (counters, tracked connections, how each connection ended); on
 * SIGTERM closes everything and exits.
 */
import { parseArgs } from "node:util";
import { bridge, type TcpConnection, TcpStack } from "../../lib/tcp/mod.ts";
import { TunDevice } from "../../lib/tun/mod.ts";
import { Impairment } from "./impairment.ts";

/** How one bridged connection ended, as the STATS line reports it. */
export interface Ending {
  srcPort: number;
  family: 4 | 6;
  /** The TCP state once the application side was done. */
  state: string;
  /** The TcpConnectionError code, if the connection failed. */
  error?: string;
}

/** The STATS line's JSON. */
export interface Stats {
  counters: TcpStack["counters"];
  tracked: number;
  endings: Ending[];
  dropped: number;
  reordered: number;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    forward: { type: "string" },
    mtu: { type: "string", default: "1500" },
    loss: { type: "string", default: "0" },
    reorder: { type: "string", default: "0" },
    delay: { type: "string", default: "0" },
    "time-wait": { type: "string", default: "1000" },
  },
});
const [forwardHost, forwardPort] = (values.forward ?? "").split(/:(?=\d+$)/);
if (!forwardHost || !forwardPort) throw new Error("usage: --forward HOST:PORT");
const mtu = Number(values.mtu);

const device = TunDevice.create({
  name: "ztcp0",
  mtu,
  addresses: ["10.77.0.1/24", "fd77::1/64"],
});
const impairment = {
  loss: Number(values.loss),
  reorder: Number(values.reorder),
  delayMs: Number(values.delay),
};
const toKernel = new Impairment({ ...impairment, seed: 1 }, (packet) => {
  try {
    device.write(packet);
  } catch {
    // The device is closing.
  }
});
const stack = new TcpStack({
  mtu,
  timeWaitMs: Number(values["time-wait"]),
  send: (packet) => toKernel.push(packet),
  onConnection: (connection) => void serve(connection),
});
const toStack = new Impairment({ ...impairment, seed: 2 }, (packet) => stack.receive(packet));
const endings: Ending[] = [];

device.packets((packet) => toStack.push(packet)).catch((error: Error) => {
  console.error(`reading ztcp0 failed: ${error.message}`);
  Deno.exit(1);
});

async function serve(connection: TcpConnection): Promise<void> {
  const ending: Ending = {
    srcPort: connection.flow.srcPort,
    family: connection.flow.family,
    state: "",
  };
  try {
    const target = await Deno.connect({ hostname: forwardHost, port: Number(forwardPort) });
    await bridge(connection, target);
    await connection.closed;
  } catch (error) {
    connection.abort(error);
    ending.error = (error as { code?: string }).code ?? String(error);
  }
  ending.state = connection.state;
  endings.push(ending);
}

Deno.addSignalListener("SIGUSR2", () => {
  const stats: Stats = {
    counters: stack.counters,
    tracked: stack.size,
    endings,
    dropped: toKernel.dropped + toStack.dropped,
    reordered: toKernel.reordered + toStack.reordered,
  };
  console.log(`STATS ${JSON.stringify(stats)}`);
});
Deno.addSignalListener("SIGTERM", async () => {
  stack.close();
  await device.close();
  Deno.exit(0);
});
console.log(`READY ${device.name}`);
