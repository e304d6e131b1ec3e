/** The demo's embedded defaults: names, addresses and ports. */

/** Everything the demo builds is named and numbered from here. */
export const DEMO = {
  /** Namespace name prefix (a random suffix follows). */
  prefix: "ztnademo",
  names: {
    relay: "relay-1",
    relayHost: "relay.demo",
    connector: "conn-1",
    agent: "alice",
    service: "web",
  },
  relayPort: 4433,
  /** The web server in the connector's namespace. */
  web: { host: "127.0.0.1", port: 8080 },
  /** The address the agent's host reaches the service at. */
  serviceIp: "100.80.0.10",
  tun: "ztna0",
  pings: 5,
  /** How long a node gets to print that it is up. */
  startTimeoutMs: 20_000,
  /** How long the session gets to go direct. */
  directTimeoutMs: 10_000,
  fetchTimeoutMs: 10_000,
} as const;

/** The URL the demo fetches through the tunnel. */
export const DEMO_URL = `http://${DEMO.serviceIp}:${DEMO.web.port}/`;
