/**
 * The HTTP endpoint Prometheus scrapes: `GET /metrics` answers the registry's
 * text exposition (after `refresh`, when given, has read the figures that need a
 * read of their own); every other path is 404, every other method 405.
 */
import type { Registry } from "prom-client";
import { formatAddress, type SocketAddress } from "../net/address.ts";

/** The metrics address is taken (another daemon, or another instance of this one). */
export class MetricsAddressInUseError extends Error {
  constructor(address: string) {
    super(`cannot serve metrics on ${address}: address already in use (give another --metrics)`);
    this.name = "MetricsAddressInUseError";
  }
}

/** A listening metrics endpoint. */
export class MetricsServer {
  /** The address it listens on (the real port when asked for port 0). */
  readonly address: SocketAddress;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>) {
    this.#server = server;
    this.address = { hostname: server.addr.hostname, port: server.addr.port };
  }

  /** Listens on `address`; throws MetricsAddressInUseError if it is taken. */
  static listen(
    address: SocketAddress,
    registry: Registry,
    refresh?: () => Promise<void>,
  ): MetricsServer {
    try {
      return new MetricsServer(Deno.serve({
        hostname: address.hostname,
        port: address.port,
        onListen: () => {},
      }, (request) => answer(request, registry, refresh)));
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new MetricsAddressInUseError(formatAddress(address));
      }
      throw new Error(
        `cannot serve metrics on ${formatAddress(address)}: ${(error as Error).message}`,
      );
    }
  }

  /** The URL Prometheus scrapes. */
  get url(): string {
    return `http://${formatAddress(this.address)}/metrics`;
  }

  /** Stops listening and waits for requests in flight. */
  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}

async function answer(
  request: Request,
  registry: Registry,
  refresh: (() => Promise<void>) | undefined,
): Promise<Response> {
  if (new URL(request.url).pathname !== "/metrics") {
    return new Response("not found: metrics are at /metrics\n", { status: 404 });
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  try {
    await refresh?.();
    return new Response(await registry.metrics(), {
      headers: { "content-type": registry.contentType },
    });
  } catch (error) {
    return new Response(`collecting metrics failed: ${(error as Error).message}\n`, {
      status: 500,
    });
  }
}
