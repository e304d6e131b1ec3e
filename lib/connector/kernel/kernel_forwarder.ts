/**
 * The connector's kernel-forwarding mode (`ztna connector --tun NAME`, root or
 * CAP_NET_ADMIN): kernel TCP/UDP carries the sessions' flows instead of the userspace
 * terminator. Design:
 *
 * - Addresses. Agents' inner sources may collide (every agent defaults to 100.64.0.1), so
 *   each session gets its own address from a private pool (AddressPool, 100.127.0.0/16 by
 *   default; the TUN holds its first host address and the prefix route). User space
 *   rewrites each packet from the agent to pool address → forward target (the service port
 *   P picks the target with port P, as in the rootless mode; ICMP echo goes to the
 *   service's first target's address) and fixes the checksums incrementally, then writes
 *   it to the TUN; a packet the kernel routes into the TUN has a pool address as its
 *   destination, which names the session, and gets the service address and the agent's
 *   source back. The destination is rewritten in user space rather than DNAT-ed, because
 *   a port may lead to different targets in different services: the kernel rules then
 *   need no per-service state and stay a plain allow list (nat_rules.ts).
 * - Filtering. Only the configured targets are reachable: user space refuses any other
 *   port, address or protocol (a RST or an ICMP unreachable, counted in `refused`), and
 *   the nftables table drops (and counts) anything from the TUN that is not to a target,
 *   and anything into the TUN that is not a reply.
 * - Targets. A target on another host is reached through the kernel's forwarding, with
 *   MASQUERADE: it sees the connector's address. A target on this host (127.0.0.1 or one
 *   of its addresses) is delivered locally and sees the session's pool address; loopback
 *   works because the TUN alone has `route_localnet` (host_setup.ts). Targets must be IPv4.
 * - Offloads. The TUN has the agent's offloads (virtio headers, TSO/checksum offload): the
 *   kernel's super-packets are split in the reader, and the packets of one task are written
 *   as a batch in which consecutive TCP segments of a flow go as one (GRO), so kernel TCP
 *   gets fewer, larger packets; where the kernel refuses offloads the TUN runs plain.
 * - Lifetime. The TUN (MTU TUNNEL_MTU), its sysctls and the table `ztna_<tun>` are made at
 *   start and removed at close; a table left by a killed connector with the same TUN name
 *   is replaced at the next start.
 */
import { getLogger } from "@logtape/logtape";
import { formatAddress, type SocketAddress } from "../../net/address.ts";
import { parseIpAddress } from "../../packet/mod.ts";
import { TUNNEL_MTU } from "../../node/configs.ts";
import { TunDevice } from "../../tun/mod.ts";
import { type TunStatus, tunStatus } from "../../admin/node_status.ts";
import type { PublishedService } from "../services.ts";
import { AddressPool, DEFAULT_POOL, ipv4ToNumber, numberToIpv4 } from "./address_pool.ts";
import { checkTargetRoutes, configureTunSysctls, KernelModeError } from "./host_setup.ts";
import {
  type AllowedTarget,
  installNatRules,
  natRefusedPackets,
  natTableName,
  removeNatRules,
} from "./nat_rules.ts";
import { emptyKernelStats, KernelSession, type KernelStats } from "./kernel_session.ts";
import { ipv4Destination } from "./packet_rewrite.ts";

const log = getLogger(["ztna", "connector", "kernel"]);

/** How a connector runs the kernel mode. */
export interface KernelModeOptions {
  /** The TUN device's name. */
  tun: string;
  /** The inner address pool (default 100.127.0.0/16). */
  pool?: string;
}

/** What the kernel forwarder is started with. */
export interface KernelForwarderOptions extends KernelModeOptions {
  services: PublishedService[];
  /** The connector's session limit: the pool must hold that many sessions. */
  maxSessions: number;
}

/** The kernel mode's counters, with its live sessions and the nftables table's drops. */
export interface KernelForwarderStats extends KernelStats {
  tun: string;
  table: string;
  pool: string;
  sessions: number;
  /** Packets the nftables table dropped (its `refused` counter), as of the last `refresh()`. */
  nftablesDropped: number;
}

/** The IPv4 address of a target as a number; a KernelModeError for anything else. */
function targetAddress(target: SocketAddress): number {
  let bytes: Uint8Array | undefined;
  try {
    bytes = parseIpAddress(target.hostname);
  } catch {
    bytes = undefined;
  }
  if (bytes?.length !== 4) {
    throw new KernelModeError(
      `kernel mode (--tun) forwards IPv4 only: target ${formatAddress(target)} is not an ` +
        `IPv4 address`,
    );
  }
  return ipv4ToNumber(bytes);
}

/** The allow list of the services' targets, TCP and UDP each. */
function allowedTargets(services: PublishedService[]): AllowedTarget[] {
  return services.flatMap((service) =>
    service.forward.flatMap((target) =>
      (["tcp", "udp"] as const).map((protocol) => ({
        address: numberToIpv4(targetAddress(target)),
        protocol,
        port: target.port,
      }))
    )
  );
}

/** A running kernel mode: the TUN, its rules and the sessions by pool address. */
export class KernelForwarder {
  readonly #tun: TunDevice;
  readonly #pool: AddressPool;
  readonly #sessions = new Map<number, KernelSession>();
  readonly #stats = emptyKernelStats();
  #nftablesDropped = 0;
  readonly #scratch = new Uint8Array(1500);
  readonly #reading: Promise<void>;
  #closing: Promise<void> | undefined;

  /** A batch of queued TUN writes failed (counted; the kernel's TCP resends). */
  readonly #onWriteError = (error: Error) => {
    this.#stats.dropped.writeFailed++;
    log.debug("TUN write failed: {error}", { error: String(error) });
  };

  private constructor(tun: TunDevice, pool: AddressPool) {
    this.#tun = tun;
    this.#pool = pool;
    this.#reading = tun.packets((packet) => this.#fromTun(packet));
    this.#reading.catch((error) => log.error("TUN reader failed: {error}", { error }));
  }

  /**
   * Checks the targets (IPv4; forwarding on the interfaces remote ones are reached by),
   * creates the TUN, sets its sysctls and installs the table. Throws a KernelModeError (or
   * the TUN's or nft's error) leaving nothing behind.
   */
  static async start(options: KernelForwarderOptions): Promise<KernelForwarder> {
    const pool = new AddressPool(options.pool ?? DEFAULT_POOL);
    if (options.maxSessions > pool.capacity) {
      throw new KernelModeError(
        `the address pool ${pool.prefix} holds ${pool.capacity} sessions, fewer than ` +
          `--max-sessions ${options.maxSessions}: give a larger pool or fewer sessions`,
      );
    }
    const targets = allowedTargets(options.services);
    await checkTargetRoutes(targets.map((target) => target.address));
    const length = pool.prefix.split("/")[1];
    const tun = TunDevice.create({
      name: options.tun,
      mtu: TUNNEL_MTU,
      addresses: [`${numberToIpv4(pool.gateway)}/${length}`],
      offloads: true,
    });
    let installed = false;
    try {
      await configureTunSysctls(tun.name);
      const echo = options.services.map((service) =>
        numberToIpv4(targetAddress(service.forward[0]))
      );
      await installNatRules({
        tun: tun.name,
        pool: pool.prefix,
        targets,
        echo: [...new Set(echo)],
      });
      installed = true;
      const forwarder = new KernelForwarder(tun, pool);
      log.info("kernel mode on {tun}: pool {pool}, nftables table ip {table}", {
        tun: tun.name,
        pool: pool.prefix,
        table: natTableName(tun.name),
      });
      return forwarder;
    } catch (error) {
      if (installed) await removeNatRules(tun.name).catch(() => {});
      await tun.close();
      throw error;
    }
  }

  /** The TUN's name. */
  get tunName(): string {
    return this.#tun.name;
  }

  /**
   * A session's end forwarding to `targets` (service port → target) and sending to the
   * agent with `send`; null when the pool is exhausted. `close()` on it frees its address.
   */
  open(
    targets: Map<number, SocketAddress>,
    send: (packet: Uint8Array) => void,
  ): { receive(packet: Uint8Array): void; close(): void; address: string } | null {
    const pooled = this.#pool.allocate();
    if (pooled === null) return null;
    const byPort = new Map([...targets].map(([port, target]) => [port, targetAddress(target)]));
    const first = targets.values().next().value!;
    const session = new KernelSession(pooled, { byPort, echo: targetAddress(first) }, {
      write: (packet) => this.#tun.queue(packet, this.#onWriteError),
      send,
      stats: this.#stats,
      scratch: this.#scratch,
    });
    this.#sessions.set(pooled, session);
    return {
      address: numberToIpv4(pooled),
      receive: (packet) => session.fromAgent(packet),
      close: () => {
        if (this.#sessions.get(pooled) !== session) return;
        this.#sessions.delete(pooled);
        this.#pool.release(pooled);
      },
    };
  }

  /** The counters now. */
  stats(): KernelForwarderStats {
    return {
      ...structuredClone(this.#stats),
      tun: this.#tun.name,
      table: natTableName(this.#tun.name),
      pool: this.#pool.prefix,
      sessions: this.#sessions.size,
      nftablesDropped: this.#nftablesDropped,
    };
  }

  /** The TUN device's status (offloads, counters). */
  tunStatus(): TunStatus {
    return tunStatus(this.#tun);
  }

  /**
   * Reads the nftables table's `refused` counter (a subprocess, so not in `stats()` itself);
   * a failed read keeps the last value and is logged.
   */
  async refresh(): Promise<void> {
    if (this.#closing) return;
    try {
      this.#nftablesDropped = await natRefusedPackets(this.#tun.name);
    } catch (error) {
      log.debug("reading the nftables counter: {error}", { error: String(error) });
    }
  }

  #fromTun(packet: Uint8Array): void {
    if (packet.length < 20 || packet[0] >> 4 !== 4) return;
    const session = this.#sessions.get(ipv4Destination(packet));
    if (session) session.fromKernel(packet);
    else this.#stats.dropped.noSession++;
  }

  /** Deletes the table, then closes the TUN (the kernel removes it). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#sessions.clear();
    try {
      await removeNatRules(this.#tun.name);
    } catch (error) {
      log.error("removing the nftables table: {error}", { error: String(error) });
    }
    await this.#tun.close();
  }
}
