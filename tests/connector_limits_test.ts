/**
 * The connector's process-wide limits (issue 8 rows 2 and 6), on loopback: UDP flows and TCP
 * connections bounded per session and per process (refused with an ICMP unreachable or a
 * RST, counted); TCP receive windows out of a shared budget, so connections to a target that
 * never reads hold at most the budget; descriptors running out (a child under
 * `prlimit --nofile=64:64`) refuse flows and connections instead of crashing the process;
 * and a legitimate flow and connection still work afterwards. Agents are in-process
 * AgentWire clients driving the connector's Terminator and TCP bridge.
 */
import assert from "node:assert/strict";
import { ConnectorLimits } from "../lib/connector/limits.ts";
import { tcpHandler } from "../lib/connector/tcp_bridge.ts";
import { Terminator } from "../lib/connector/terminator.ts";
import type { SocketAddress } from "../lib/net/address.ts";
import { SharedTcpBudget, type TcpConnection, TcpStack } from "../lib/tcp/mod.ts";
import { AgentWire, type TcpClient } from "./support/agent_wire.ts";
import { pseudoRandomBytes, sha256, waitFor } from "./support/bytes.ts";
import type { FdReport } from "./support/connector_fd_main.ts";
import type { StallReport } from "./support/connector_stall_main.ts";

const FD_MAIN = new URL("./support/connector_fd_main.ts", import.meta.url).pathname;
const STALL_MAIN = new URL("./support/connector_stall_main.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;
const text = (s: string) => new TextEncoder().encode(s);

/** A UDP and a TCP echo server on loopback. */
function echoServers(): { udp: SocketAddress; tcp: SocketAddress; close(): void } {
  const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    try {
      for await (const [data, from] of udp) await udp.send(data, from);
    } catch {
      // Closed.
    }
  })();
  (async () => {
    try {
      for await (const conn of tcp) conn.readable.pipeTo(conn.writable).catch(() => {});
    } catch {
      // Closed.
    }
  })();
  return {
    udp: { hostname: "127.0.0.1", port: (udp.addr as Deno.NetAddr).port },
    tcp: { hostname: "127.0.0.1", port: tcp.addr.port },
    close() {
      udp.close();
      tcp.close();
    },
  };
}

/** One session: an agent wire driving a terminator (with TCP) that shares `limits`. */
function session(limits: ConnectorLimits, udp: SocketAddress, tcp: SocketAddress) {
  const wire = new AgentWire();
  const terminator = new Terminator(
    new Map([[7, udp]]),
    wire.send,
    tcpHandler(wire.send, new Map([[7, tcp]]), limits),
    limits,
  );
  wire.attach((packet) => terminator.receive(packet));
  return { wire, terminator };
}

/** Resolves once the client is established or was reset. */
function answered(client: TcpClient): Promise<void> {
  return client.until(() => client.state !== "syn-sent");
}

Deno.test("UDP flows: a session's and the process's limits refuse new flows with ICMP, counted", async () => {
  const echo = echoServers();
  const limits = new ConnectorLimits({ maxUdpFlows: 5, maxUdpFlowsPerSession: 3 });
  const a = session(limits, echo.udp, echo.tcp);
  const b = session(limits, echo.udp, echo.tcp);
  try {
    for (let i = 0; i < 4; i++) a.wire.sendUdp(30_000 + i, 7, text(`a${i}`));
    for (let i = 0; i < 4; i++) b.wire.sendUdp(30_100 + i, 7, text(`b${i}`));
    await waitFor(() => a.wire.udp.length + b.wire.udp.length === 5, "5 echoes");
    assert.deepEqual(a.wire.icmp, [30_003], "a's fourth flow: over the session's 3");
    assert.deepEqual(b.wire.icmp, [30_102, 30_103], "b's third and fourth: over the process's 5");
    assert.deepEqual(
      a.wire.udp.map((reply) => reply.dstPort).sort(),
      [30_000, 30_001, 30_002],
    );
    // An open flow keeps working at the limit.
    a.wire.sendUdp(30_000, 7, text("again"));
    await waitFor(() => a.wire.udp.length === 4, "the open flow's second echo");
    let stats = limits.stats();
    assert.deepEqual(
      [stats.udpFlows, stats.udpRefusedSession, stats.udpRefusedProcess, stats.fdExhausted],
      [5, 1, 2, 0],
    );
    assert.equal(a.terminator.stats.refused, 1);
    assert.equal(b.terminator.udp.stats.flowsRefused, 2);

    // A session that ends gives its flows back: b may open another.
    a.terminator.close();
    assert.equal(limits.stats().udpFlows, 2);
    b.wire.sendUdp(30_104, 7, text("b4"));
    await waitFor(() => b.wire.udp.length === 3, "b's new flow's echo");
    stats = limits.stats();
    assert.deepEqual([stats.udpFlows, stats.udpRefusedProcess], [3, 2]);
  } finally {
    a.terminator.close();
    b.terminator.close();
    limits.close();
    echo.close();
  }
  assert.equal(limits.stats().udpFlows, 0);
});

Deno.test("TCP: a session's and the process's connection limits answer SYNs with a RST, counted", async () => {
  const echo = echoServers();
  const limits = new ConnectorLimits({ maxTcpConnections: 5, maxTcpConnectionsPerSession: 3 });
  const a = session(limits, echo.udp, echo.tcp);
  const b = session(limits, echo.udp, echo.tcp);
  try {
    const first = Array.from({ length: 4 }, () => a.wire.connect(7));
    await Promise.all(first.map(answered));
    const second = Array.from({ length: 4 }, () => b.wire.connect(7));
    await Promise.all(second.map(answered));
    assert.deepEqual(first.map((c) => c.state), [
      "established",
      "established",
      "established",
      "reset",
    ]);
    assert.deepEqual(second.map((c) => c.state), [
      "established",
      "established",
      "reset",
      "reset",
    ]);
    let stats = limits.stats();
    assert.deepEqual(
      [stats.tcpConnections, stats.tcpRefusedSession, stats.tcpRefusedProcess],
      [5, 1, 2],
    );

    // The connections admitted work; one that closes (both FINs) leaves.
    const client = second[0];
    client.write(text("ping"));
    client.end();
    await client.until(() => client.finReceived);
    assert.equal(new TextDecoder().decode(client.receivedData()), "ping");
    await waitFor(() => limits.stats().tcpConnections === 4, "the closed connection gone");

    // a's connections end (RSTs): their slots and buffers are free again.
    for (const c of first) c.reset();
    await a.wire.settled();
    assert.equal(limits.stats().tcpConnections, 1);
    const later = b.wire.connect(7);
    await answered(later);
    assert.equal(later.state, "established");
    stats = limits.stats();
    assert.deepEqual([stats.tcpConnections, stats.tcpRefusedProcess], [2, 2]);
  } finally {
    a.terminator.close();
    b.terminator.close();
    limits.close();
    echo.close();
  }
  const stats = limits.stats();
  assert.deepEqual([stats.tcpConnections, stats.tcpBufferInUse], [0, 0]);
});

Deno.test("TCP buffer budget: windows shrink as it fills, unread data never exceeds it, a connection without a floor gets a RST", async () => {
  const budget = new SharedTcpBudget({ maxConnections: 1000, bytes: 256 * 1024, floor: 8192 });
  const wire = new AgentWire();
  const accepted: TcpConnection[] = [];
  const stack = new TcpStack({
    receiveWindow: MiB,
    shared: budget,
    send: wire.send,
    onConnection: (connection) => accepted.push(connection), // never read (until below)
  });
  wire.attach((packet) => stack.receive(packet));
  const data = pseudoRandomBytes(MiB, 5);
  const clients: TcpClient[] = [];
  const windows: number[] = [];
  try {
    // One at a time: each fills whatever window it gets.
    while (clients.length < 100) {
      const client = wire.connect(7);
      clients.push(client);
      await answered(client);
      if (client.state !== "established") break;
      windows.push(client.window);
      client.write(data);
      await wire.settled();
    }
    const refused = clients.filter((c) => c.state === "reset").length;
    assert.equal(refused, 1, "the loop stops at the first RST");
    assert.equal(clients.length - refused, accepted.length);
    // 8 KiB reserved when the SYN came, then an eighth of what exceeds the free quarter:
    // (256 Ki - 8 Ki - 64 Ki) / 8 = 23 Ki more.
    assert.equal(windows[0], 8192 + 23_552);
    assert.ok(
      windows.every((w, i) => i === 0 || w <= windows[i - 1]),
      `windows shrink: ${windows}`,
    );
    assert.equal(windows[windows.length - 1], 8192, "the last connections get their floor");
    const unread = clients.reduce((sum, c) => sum + c.acked, 0);
    assert.ok(unread <= budget.stats.bytesInUse, `${unread} unread within what is reserved`);
    assert.ok(budget.stats.bytesPeak <= 256 * 1024, `peak ${budget.stats.bytesPeak}`);
    assert.equal(budget.stats.refusedMemory, 1);
    assert.equal(stack.counters.synsDropped, 1);

    // A reader moves all its data even with the budget spent: its floor keeps reopening.
    const reader = accepted[accepted.length - 1].readable.getReader();
    let read = 0;
    while (read < MiB) {
      const chunk = await reader.read();
      assert.ok(!chunk.done);
      read += chunk.value.length;
    }
    assert.equal(clients[accepted.length - 1].acked, MiB);
    // A connection that ends gives everything back: a new one is admitted.
    clients[0].reset();
    await wire.settled();
    const late = wire.connect(7);
    await answered(late);
    assert.equal(late.state, "established");
  } finally {
    stack.close();
  }
  assert.deepEqual([budget.stats.connections, budget.stats.bytesInUse], [0, 0]);
});

Deno.test("descriptors run out (prlimit --nofile=64:64): flows and connections are refused and counted, the process lives, new ones work once flows expire", async () => {
  const echo = echoServers();
  try {
    const run = await new Deno.Command("prlimit", {
      args: [
        "--nofile=64:64",
        Deno.execPath(),
        "run",
        "--allow-all",
        "--unstable-net",
        FD_MAIN,
        "--udp-echo",
        String(echo.udp.port),
        "--tcp-echo",
        String(echo.tcp.port),
        "--flows",
        "100",
        "--connections",
        "40",
      ],
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `exit ${run.code}\nstdout: ${stdout}\nstderr: ${stderr}`);
    assert.doesNotMatch(stderr, /panicked|Uncaught/);
    const report = JSON.parse(stdout) as FdReport;
    assert.equal(report.openFileLimit, 64);
    assert.equal(report.udpOpened + report.udpRefused, 100);
    assert.ok(report.udpRefused >= 100 - 64, `${report.udpRefused} refused: 64 descriptors`);
    assert.equal(report.udpReplies, report.udpOpened, "every flow opened was echoed");
    assert.equal(report.icmpErrors, report.udpRefused, "every flow refused got an ICMP error");
    assert.deepEqual([report.tcpEstablished, report.tcpReset], [40, 40]);
    const { exhausted, drained } = report;
    assert.equal(exhausted.fdExhausted, report.udpRefused + 40);
    assert.deepEqual([exhausted.udpOpenFailed, exhausted.tcpConnectFailed], [0, 0]);
    assert.deepEqual([exhausted.udpFlows, exhausted.tcpConnections], [report.udpOpened, 0]);
    assert.deepEqual([drained.udpFlows, drained.tcpConnections, drained.tcpBufferInUse], [
      0,
      0,
      0,
    ]);
    assert.equal(report.udpAfter, true, "a new UDP flow is echoed once the others expired");
    assert.equal(report.tcpAfterReceived, report.tcpAfterSent, "a new connection echoes 256 KiB");
    const warnings = stderr.split("\n").filter((line) => line.includes("out of file descriptors"));
    assert.equal(warnings.length, 1, `one warning a minute at most:\n${stderr}`);
  } finally {
    echo.close();
  }
});

Deno.test("400 connections to a target that never reads hold at most the 64 MiB budget; a new connection still transfers intact", async () => {
  const run = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--unstable-net",
      "--v8-flags=--expose-gc",
      STALL_MAIN,
      "--connections",
      "400",
      "--budget-mib",
      "64",
    ],
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(240_000),
  }).output();
  const stdout = new TextDecoder().decode(run.stdout);
  const stderr = new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 0, `exit ${run.code}\nstdout: ${stdout}\nstderr: ${stderr}`);
  const report = JSON.parse(stdout) as StallReport;
  const budget = 64 * MiB;
  assert.deepEqual([report.established, report.refused], [400, 0]);
  assert.equal(report.limits.tcpBufferBudget, budget);
  assert.ok(report.limits.tcpBufferPeak <= budget, `peak ${report.limits.tcpBufferPeak}`);
  assert.ok(report.sampledInUseMax <= budget, `sampled ${report.sampledInUseMax}`);
  // What JavaScript holds grows by the budget at most, plus per connection its partly
  // filled receive block (16 KiB), a 4 KiB read buffer and its objects.
  const heldBound = budget + 400 * 48 * 1024;
  assert.ok(report.heldGrowth <= heldBound, `held ${report.heldGrowth} > ${heldBound}`);
  // Without the budget (1 MiB windows each) this run grows RSS by 1.1-1.6 GB.
  assert.ok(report.rssGrowth <= 320 * MiB, `RSS grew by ${report.rssGrowth}`);
  assert.equal(report.legitBytes, MiB);
  assert.equal(report.legitReceivedSha, report.legitSentSha);
  assert.equal(report.legitReceivedSha, sha256(pseudoRandomBytes(8 * MiB, 7).subarray(0, MiB)));
});
