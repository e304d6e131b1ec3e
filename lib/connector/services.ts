/**
 * The services one connector publishes, each with its forward targets and
 * access list, from the three ways an operator gives them: the single-service
 * flags (`--service web --forward HOST:PORT --allow alice`), the repeatable
 * `--publish 'web=HOST:PORT,HOST:PORT;allow=alice,bob'`, and a configuration
 * file's `[services.NAME]` tables (`forward = [...]`, `allow = [...]`).
 */
import { isServiceName } from "../control/messages.ts";
import { parseHostPort, type SocketAddress } from "../net/address.ts";
import { UsageError } from "../cli/errors.ts";

/** One published service. */
export interface PublishedService {
  /** The service's name (its certificate must grant it). */
  name: string;
  /** Targets; a packet to service port P goes to the target with port P. */
  forward: SocketAddress[];
  /** Agent names allowed in; `*` allows every agent the CA issued. */
  allow: string[];
}

/** Most services one connector publishes. */
export const MAX_SERVICES = 256;

/** Splits a comma-separated access list (`alice, bob` or `*`). */
export function parseAllowList(text: string): string[] {
  return text.split(",").map((name) => name.trim()).filter(Boolean);
}

/** Checks a service's parts; `where` prefixes errors (`--publish`, a file's table). */
function checked(
  where: string,
  name: string,
  forward: string[],
  allow: string[],
): PublishedService {
  if (!isServiceName(name)) throw new UsageError(`${where}: invalid service name "${name}"`);
  if (forward.length === 0) throw new UsageError(`${where}: service ${name} has no forward target`);
  if (allow.length === 0) throw new UsageError(`${where}: service ${name} has no access list`);
  const targets = forward.map((text) => {
    try {
      return parseHostPort(text.trim());
    } catch (error) {
      throw new UsageError(`${where}: service ${name}: ${(error as Error).message}`);
    }
  });
  return { name, forward: targets, allow };
}

/** Usage of `--publish`'s value. */
export const PUBLISH_SYNTAX = "NAME=HOST:PORT[,HOST:PORT...];allow=AGENT[,AGENT...]";

/** Parses one `--publish` value: `web=127.0.0.1:8080,127.0.0.1:8443;allow=alice,bob`. */
export function parsePublish(text: string): PublishedService {
  const match = /^([^=;]*)=([^;]*);allow=(.*)$/.exec(text.trim());
  if (!match) {
    throw new UsageError(`--publish: expected ${PUBLISH_SYNTAX}, not '${text}'`);
  }
  const [, name, forward, allow] = match;
  return checked(
    "--publish",
    name.trim(),
    forward.split(",").filter((s) => s.trim() !== ""),
    parseAllowList(allow),
  );
}

/** A list of strings in a table, or an error naming the file and key. */
function stringList(value: unknown, file: string, key: string): string[] {
  const items = typeof value === "string" ? [value] : value;
  if (!Array.isArray(items) || !items.every((item) => typeof item === "string")) {
    throw new UsageError(`${file}: key "${key}" must be a string or an array of strings`);
  }
  return items;
}

/** The services of a configuration file's `services` table (`[services.NAME]` tables). */
export function servicesFromTable(table: unknown, file: string): PublishedService[] {
  return Object.entries(table as Record<string, unknown>).map(([name, entry]) => {
    const key = `services.${name}`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new UsageError(`${file}: key "${key}" must be a table`);
    }
    const fields = entry as Record<string, unknown>;
    for (const field of Object.keys(fields)) {
      if (field !== "forward" && field !== "allow") {
        throw new UsageError(`${file}: unknown key "${key}.${field}"`);
      }
    }
    const forward = stringList(fields.forward ?? [], file, `${key}.forward`);
    const allow = stringList(fields.allow ?? [], file, `${key}.allow`).flatMap(parseAllowList);
    return checked(`${file}: [${key}]`, name, forward, allow);
  });
}

/** Joins services from all sources; a name given twice, or too many services, is an error. */
export function joinServices(...lists: PublishedService[][]): PublishedService[] {
  const all = lists.flat();
  const seen = new Set<string>();
  for (const service of all) {
    if (seen.has(service.name)) {
      throw new UsageError(`service ${service.name} is given more than once`);
    }
    seen.add(service.name);
  }
  if (all.length > MAX_SERVICES) {
    throw new UsageError(`${all.length} services: a connector publishes ${MAX_SERVICES} at most`);
  }
  return all;
}
