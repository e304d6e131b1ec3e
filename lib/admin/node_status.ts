/** The status document an agent or connector serves on its admin socket. */
import type { SessionStatus } from "../session/session.ts";
import type { CertificateExpiryStatus } from "../pki/expiry.ts";
import { describeOffloads, type TunDevice, type TunStats } from "../tun/mod.ts";

/** A node's relay link, for status output. */
export interface RelayLinkStatus {
  /** The relay's address, as dialled. */
  address: string;
  connected: boolean;
  rttMs: number | null;
  /** Where the relay sees this node (QAD). */
  observed: string;
  reconnects: number;
}

/** What `ztna status` shows for an agent or connector. */
export interface NodeStatus {
  role: "agent" | "connector";
  /** Services published (connector) or reached (agent). */
  services: string[];
  relay: RelayLinkStatus;
  /** The NAT in front of this node, as its last check against the relay's STUN service found. */
  nat: NatStatus | null;
  sessions: SessionStatus[];
  /** The node's certificate expiry (added by the daemon, see lib/cli/daemon.ts). */
  certificate?: CertificateExpiryStatus;
  /** The node's TUN device: the agent's, or the connector's in kernel mode. */
  tun?: TunStatus;
}

/** A TUN device as status shows it. */
export interface TunStatus {
  name: string;
  mtu: number;
  /** The offloads on, e.g. `csum tso4 tso6`, or `none`. */
  offloads: string;
  counters: TunStats;
}

/** The NAT in front of a node (RFC 4787 behaviours; "undetermined" where a part could not be told). */
export interface NatStatus {
  /** `open`, `full cone`, `restricted cone`, `port-restricted cone`, `symmetric` or `unknown`. */
  classic: string;
  mapping: string;
  filtering: string;
  /** The public addresses the relay's STUN service saw. */
  public: string[];
}

/** The status of `device`, now. */
export function tunStatus(device: TunDevice): TunStatus {
  return {
    name: device.name,
    mtu: device.mtu,
    offloads: describeOffloads(device.offloads),
    counters: device.stats(),
  };
}
