/** The page the demo's web server serves and the check that a fetched body is it. */

/** The HTML page carrying `token`, a random value that proves the body came from this run's server. */
export function demoPage(token: string): string {
  return [
    "<!doctype html>",
    '<html lang="en">',
    '<head><meta charset="utf-8"><title>ztna demo</title></head>',
    "<body>",
    "<h1>Hello through ztna</h1>",
    "<p>This page came from a web server on 127.0.0.1:8080 in the connector's namespace,",
    "through the relay, to the agent's TUN device.</p>",
    `<p>Run token: <code>${token}</code></p>`,
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

/** A fresh random token for {@link demoPage}. */
export function newPageToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
