/** The status document an agent or connector serves on its admin socket. */
import type { SessionStatus } from "../session/session.ts";

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
  sessions: SessionStatus[];
}
