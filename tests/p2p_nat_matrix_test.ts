/**
 * The NAT matrix: an agent and a connector behind routers that behave like
 * real NATs of the RFC 4787 kinds (lib/netns/nat_lab.ts), with real `ztna`
 * processes. Each pair's outcome is written down from the two behaviours:
 * a direct path exists when one side's filtering admits the other side's
 * packets from the address its mapping gives them, found by punching and
 * peer-reflexive probing; otherwise the session stays on the relay. The
 * outcome is asserted by the relay's per-session data counters and by a
 * capture of what crosses the internet between the two sites.
 */
import assert from "node:assert/strict";
import type { NatKind } from "../lib/netns/mod.ts";
import {
  type LabSites,
  lastLogLines,
  type P2pLab,
  relayedBetween,
  SERVICE_IP,
  withP2pLab,
} from "./support/p2p_lab.ts";

interface Case {
  name: string;
  sites: LabSites;
  expect: "direct" | "relay";
  why: string;
  /** The nodes' NAT checks show no path can exist: the agent stops punching and says so. */
  hopeless?: true | "either";
}

const pair = (agent: NatKind, connector: NatKind): LabSites => ({
  agent: { kind: agent },
  connector: { kind: connector },
});

const CASES: Case[] = [
  {
    name: "no NAT ↔ no NAT",
    sites: pair("none", "none"),
    expect: "direct",
    why: "routed: each end's public address is its own",
  },
  {
    name: "port-restricted cone ↔ port-restricted cone",
    sites: pair("port-restricted-cone", "port-restricted-cone"),
    expect: "direct",
    why: "both map endpoint-independently: simultaneous punches open both filters",
  },
  {
    name: "full cone ↔ symmetric",
    sites: pair("full-cone", "symmetric"),
    expect: "direct",
    why: "the agent's NAT admits the connector's punch from its new port; the agent probes it",
  },
  {
    name: "symmetric ↔ full cone",
    sites: pair("symmetric", "full-cone"),
    expect: "direct",
    why: "the connector's NAT admits the agent's new port; the connector's pong reaches it",
  },
  {
    name: "restricted cone ↔ symmetric",
    sites: pair("restricted-cone", "symmetric"),
    expect: "direct",
    why: "the agent's NAT filters by address only: the connector's new port gets in",
  },
  {
    name: "double NAT ↔ port-restricted cone",
    sites: pair("double", "port-restricted-cone"),
    expect: "direct",
    why: "both NAT layers map endpoint-independently",
  },
  {
    name: "two hosts behind one NAT",
    sites: { shared: { kind: "port-restricted-cone" } },
    expect: "direct",
    why: "their LAN addresses are candidates; the NAT does not hairpin",
  },
  {
    name: "port-restricted cone ↔ symmetric",
    sites: pair("port-restricted-cone", "symmetric"),
    expect: "relay",
    why: "the connector's punches leave from a port the agent's NAT never sent to",
    hopeless: true,
  },
  {
    name: "symmetric ↔ symmetric",
    sites: pair("symmetric", "symmetric"),
    expect: "relay",
    why: "neither side can learn the port the other's NAT picks for it",
    hopeless: true,
  },
  {
    name: "bare MASQUERADE ↔ bare MASQUERADE",
    sites: pair("bare-masquerade", "bare-masquerade"),
    expect: "relay",
    why: "routers that accept punches addressed to themselves remap the host's own punch",
    // Such a router remaps after any unsolicited packet, the NAT check's answers from the
    // relay's other addresses included: the nodes may see per-destination mappings and stop.
    hopeless: "either",
  },
];

/** Pings through the tunnel; returns the replies. */
async function pingThrough(lab: P2pLab, count: number): Promise<number> {
  const ping = await lab.lab.net.exec(lab.agentHost, [
    ...["ping", "-c", String(count), "-i", "0.05", "-W", "2", "-s", "1000", SERVICE_IP],
  ]);
  return Number(/(\d+) received/.exec(ping.stdout)?.[1] ?? 0);
}

for (const c of CASES) {
  Deno.test(`NAT matrix: ${c.name} → ${c.expect} (${c.why})`, async () => {
    await withP2pLab("p2pm", c.sites, async (lab) => {
      const direct = await lab.direct(c.expect === "direct" ? 10_000 : 7_000);
      const tail = () => lab.agent.stderr.tail().slice(-15).join("\n");
      if (c.expect === "direct") {
        assert.ok(direct, `no direct path; the agent's last lines:\n${tail()}`);
        const expectedHost = "shared" in c.sites
          ? lab.connectorSite.hostAddresses[1]
          : lab.connectorSite.kind === "none"
          ? lab.connectorSite.hostAddresses[0]
          : lab.connectorSite.publicAddress;
        assert.equal(direct.split(":")[0], expectedHost, `went direct to ${direct}`);
        // Let the connector follow the migration before counting.
        await lab.connector.stderr.waitFor(/session web from alice: direct /, 3_000);
      } else {
        assert.equal(direct, null, `went direct to ${direct} where no path should exist`);
        const staying = lab.agent.stderr.tail().some((l) =>
          /session web: staying on the relay/.test(l)
        );
        if (c.hopeless !== "either") {
          assert.equal(
            staying,
            c.hopeless === true,
            `the agent ${staying ? "gave up" : "keeps trying"}:\n` +
              [lab.agent, lab.connector].flatMap((child) =>
                child.stderr.tail().filter((l) => /NAT|staying|direct/.test(l))
              ).join("\n"),
          );
        }
      }
      const before = await lab.relayCounters();
      const capture = await lab.capture();
      const replies = await pingThrough(lab, 40);
      assert.equal(
        replies,
        40,
        `${replies}/40 pings answered:\n${lastLogLines(lab, 12).join("\n")}`,
      );
      const crossed = await capture.stop();
      const after = await lab.relayCounters();
      const viaRelay = relayedBetween(before, after, ["agentToConnector", "connectorToAgent"]);
      if (c.expect === "direct") {
        assert.equal(viaRelay, 0, `the relay forwarded ${viaRelay} session packets`);
        if ("shared" in c.sites) {
          // One LAN: the pings stay on it; only relay keep-alives reach the internet.
          assert.ok(crossed < 10, `${crossed} packets of the shared NAT crossed the internet`);
        } else {
          assert.ok(crossed >= 80, `${crossed} packets crossed between the sites' addresses`);
        }
      } else {
        assert.ok(viaRelay >= 80, `the relay forwarded only ${viaRelay} session packets`);
      }
    });
  });
}
