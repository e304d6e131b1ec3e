/** The status document a relay serves on its admin socket, and how it is made. */
import { formatAddress } from "../net/address.ts";
import type { EndpointStats } from "../quic/endpoint.ts";
import type { Relay, RelayStats, SessionSnapshot } from "../relay/relay.ts";
import type { StunServer, StunServerStats } from "../relay/stun_server.ts";
import type { CertificateExpiryStatus } from "../pki/expiry.ts";

/** What `ztna status` shows for a relay. */
export interface RelayStatus {
  role: "relay";
  /** The address it listens on. */
  listen: string;
  /** Connected nodes (hello done), in all and by role. */
  nodes: number;
  nodesByRole: { agent: number; connector: number };
  /** Connectors publishing each service: how many, and their names. */
  services: Record<string, number>;
  connectors: Record<string, string[]>;
  stats: RelayStats;
  /** Refused requests since the start, by error code. */
  refusals: Record<string, number>;
  endpoint: EndpointStats;
  stun: StunServerStats | null;
  sessions: SessionSnapshot[];
  /** The relay's certificate expiry (added by the daemon, see lib/cli/daemon.ts). */
  certificate?: CertificateExpiryStatus;
}

/** The relay's status now. */
export function relayStatus(relay: Relay, stun: StunServer | undefined): RelayStatus {
  const { nodes, services } = relay.snapshot();
  const { roles, connectors } = relay.roster();
  return {
    role: "relay",
    listen: formatAddress(relay.address),
    nodes,
    nodesByRole: roles,
    services,
    connectors,
    stats: { ...relay.stats },
    refusals: { ...relay.refusals },
    endpoint: { ...relay.endpoint.stats },
    stun: stun ? { ...stun.stats } : null,
    sessions: relay.sessionSnapshots(),
  };
}
