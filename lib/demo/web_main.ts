/**
 * The demo's web server, run in the connector's namespace:
 * `web_main.ts HOST PORT TOKEN` serves a small HTML page containing TOKEN at
 * every path, prints `READY` once listening, and serves until killed.
 */
import { demoPage } from "./page.ts";

const [hostname, port, token] = Deno.args;
if (hostname === undefined || port === undefined || token === undefined) {
  console.error("usage: web_main.ts HOST PORT TOKEN");
  Deno.exit(2);
}
const page = demoPage(token);
Deno.serve({
  hostname,
  port: Number(port),
  onListen: () => console.log("READY"),
}, () => new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } }));
