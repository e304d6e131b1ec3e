/** Linux TUN devices: `TunDevice.create({ name, mtu, addresses, routes })`. */
export { TunDevice } from "./device.ts";
export type { TunOptions } from "./config.ts";
export { tunUnsupportedReason } from "./support.ts";
