/** Linux TUN devices: `TunDevice.create({ name, mtu, addresses, routes })`. */
export { describeOffloads, TunDevice, type TunStats } from "./device.ts";
export type { TunOptions } from "./config.ts";
export { tunUnsupportedReason } from "./support.ts";
