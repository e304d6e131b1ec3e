/**
 * Run in a test namespace: `deno run -A tun_offload_bridge_main.ts` creates TUN
 * `zoffa` with offloads (10.9.0.1/32, route 10.9.0.2/32, MTU 1240) and TUN
 * `zoffb` without (MTU 1240, no addresses: the test moves it into a second
 * namespace and configures it there), prints `READY <offloads>` and then pipes
 * packets both ways: every packet read from `zoffa` (super-packets already
 * split into MTU packets) is written to `zoffb`, every packet read from
 * `zoffb` is queued on `zoffa` (coalesced into super-packets). SIGUSR2 prints
 * `STATS {"a": TunStats, "b": TunStats}`; SIGTERM closes both devices and exits.
 */
import { TunDevice } from "../../lib/tun/mod.ts";

const a = TunDevice.create({
  name: "zoffa",
  mtu: 1240,
  addresses: ["10.9.0.1/32"],
  routes: ["10.9.0.2/32"],
  offloads: true,
});
const b = TunDevice.create({ name: "zoffb", mtu: 1240 });

const ignore = () => {}; // e.g. writes to zoffb while it is being moved
a.packets((packet) => {
  try {
    b.write(packet);
  } catch {
    ignore();
  }
}).catch((error: Error) => console.log(`READ-ERROR a ${error.message}`));
b.packets((packet) => a.queue(packet, ignore))
  .catch((error: Error) => console.log(`READ-ERROR b ${error.message}`));

Deno.addSignalListener("SIGUSR2", () => {
  console.log(`STATS ${JSON.stringify({ a: a.stats(), b: b.stats() })}`);
});
Deno.addSignalListener("SIGTERM", async () => {
  await a.close();
  await b.close();
  Deno.exit(0);
});
console.log(`READY ${a.offloads}`);
