/**
 * The agent's side of a connector session, in process, for connector tests: IP packets go
 * to a `receive` function (a Terminator's) and its replies come back through `send`, both
 * queued and delivered in a loop (no re-entry). On this side minimal active-open TCP
 * clients (no loss happens in process, so no retransmission) send what the connector's
 * windows allow and ACK what it sends; UDP datagrams and ICMP errors are collected.
 */
import {
  formatIpAddress,
  isPacketError,
  parseIcmp,
  parseIp,
  parseIpAddress,
  parseTcp,
  parseUdp,
  PROTOCOL_ICMP,
  PROTOCOL_TCP,
  PROTOCOL_UDP,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpSegment,
  udpHeadersLength,
  writeUdpPacket,
} from "../../lib/packet/mod.ts";
import { buildSegment } from "../../lib/tcp/segment.ts";

/** The agent's tunnel address. */
export const AGENT_ADDRESS = "100.64.0.2";
/** The service address the agent sends to. */
export const SERVICE_ADDRESS = "100.80.0.10";
/** Window scale the clients offer (their own window is never the limit). */
const CLIENT_WINDOW_SCALE = 7;
/** MSS the clients offer; the connector answers with its own (smaller) one. */
const CLIENT_MSS = 1460;
/** The clients' window field: 8 MiB with their scale, never the limit. */
const CLIENT_WINDOW = 0xffff;
/** A SYN without an answer is sent again after this long (the SYN backlog drops some). */
const SYN_RETRY_MS = 100;
/** SYNs sent at most before the client gives up. */
const SYN_TRIES = 50;

/** A UDP datagram that came back to the agent. */
export interface UdpReply {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/** Both directions between an agent and a connector's terminator. */
export class AgentWire {
  /** UDP datagrams the connector sent. */
  readonly udp: UdpReply[] = [];
  /** ICMP errors the connector sent, by the agent port of the datagram they quote. */
  readonly icmp: number[] = [];
  readonly agent = parseIpAddress(AGENT_ADDRESS);
  readonly service = parseIpAddress(SERVICE_ADDRESS);
  /** Pass this as the connector side's `send`. */
  readonly send = (packet: Uint8Array) => this.#enqueue(this.#toAgent, packet.slice());
  #receive: (packet: Uint8Array) => void = () => {
    throw new Error("AgentWire: no connector attached");
  };
  readonly #clients = new Map<number, TcpClient>();
  #toConnector: Uint8Array[] = [];
  #toAgent: Uint8Array[] = [];
  #scheduled = false;
  #nextPort = 20_000;

  /** Connects the connector side: packets from the agent go to `receive`. */
  attach(receive: (packet: Uint8Array) => void): void {
    this.#receive = receive;
  }

  /** Sends one UDP datagram from agent port `srcPort` to service port `dstPort`. */
  sendUdp(srcPort: number, dstPort: number, payload: Uint8Array): void {
    const out = new Uint8Array(udpHeadersLength(this.agent) + payload.length);
    writeUdpPacket(out, { src: this.agent, dst: this.service, srcPort, dstPort, payload });
    this.toConnector(out);
  }

  /** A new TCP client to service port `port` (its SYN goes out at once). */
  connect(port: number): TcpClient {
    const client = new TcpClient(this, this.#nextPort++, port);
    this.#clients.set(client.localPort, client);
    client.start();
    return client;
  }

  /** Queues a packet for the connector. */
  toConnector(packet: Uint8Array): void {
    this.#enqueue(this.#toConnector, packet);
  }

  /** Resolves once every queued packet was delivered (and what it caused, too). */
  async settled(): Promise<void> {
    while (this.#scheduled) await new Promise((resolve) => setTimeout(resolve, 0));
  }

  #enqueue(queue: Uint8Array[], packet: Uint8Array): void {
    queue.push(packet);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#drain());
  }

  #drain(): void {
    while (this.#toConnector.length > 0 || this.#toAgent.length > 0) {
      const up = this.#toConnector;
      this.#toConnector = [];
      for (const packet of up) this.#receive(packet);
      const down = this.#toAgent;
      this.#toAgent = [];
      for (const packet of down) this.#deliver(packet);
    }
    this.#scheduled = false;
  }

  #deliver(packet: Uint8Array): void {
    const ip = parseIp(packet);
    if (isPacketError(ip)) throw new Error(`the connector sent a bad IP packet: ${ip}`);
    if (formatIpAddress(ip.dst) !== AGENT_ADDRESS) {
      throw new Error(`the connector sent a packet to ${formatIpAddress(ip.dst)}`);
    }
    if (ip.protocol === PROTOCOL_TCP) {
      const seg = parseTcp(ip);
      if (isPacketError(seg)) throw new Error(`the connector sent a bad TCP segment: ${seg}`);
      this.#clients.get(seg.dstPort)?.segment(seg);
    } else if (ip.protocol === PROTOCOL_UDP) {
      const udp = parseUdp(ip);
      if (isPacketError(udp)) throw new Error(`the connector sent a bad UDP datagram: ${udp}`);
      this.udp.push({ srcPort: udp.srcPort, dstPort: udp.dstPort, payload: udp.payload.slice() });
    } else if (ip.protocol === PROTOCOL_ICMP) {
      const icmp = parseIcmp(ip);
      if (isPacketError(icmp)) throw new Error(`the connector sent a bad ICMP message: ${icmp}`);
      // The quoted datagram: its IPv4 header (20 bytes here), then the UDP source port.
      this.icmp.push((icmp.data[20] << 8) | icmp.data[21]);
    }
  }
}

/** What a client's connection came to. */
export type ClientState = "syn-sent" | "established" | "reset" | "closed";

/** A minimal active-open TCP client on the agent's side. */
export class TcpClient {
  readonly localPort: number;
  readonly remotePort: number;
  state: ClientState = "syn-sent";
  /** Bytes the connector acknowledged. */
  acked = 0;
  /** Bytes received from the connector, in order. */
  readonly received: Uint8Array[] = [];
  receivedBytes = 0;
  /** The connector's FIN arrived. */
  finReceived = false;
  /** Settles once established (rejects on a RST before that). */
  readonly opened: Promise<void>;
  readonly #wire: AgentWire;
  readonly #iss = 1_000;
  #mss = 536;
  #sndUna = 0;
  #sndNxt = 0;
  #sndWnd = 0;
  #peerScale = 0;
  #rcvNxt = 0;
  /** What `write` queued and the connector did not acknowledge yet (from `#sndUna`). */
  #pending: Uint8Array[] = [];
  #queued = 0;
  #finQueued = false;
  #finSent = false;
  #settle: { resolve: () => void; reject: (error: Error) => void } | undefined;
  #waiters: Array<() => void> = [];

  /** Made by `AgentWire.connect`. */
  constructor(wire: AgentWire, localPort: number, remotePort: number) {
    this.#wire = wire;
    this.localPort = localPort;
    this.remotePort = remotePort;
    this.opened = new Promise<void>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.opened.catch(() => {});
  }

  /** Sends the SYN, again every 100 ms until answered (50 at most, then the client is closed). */
  start(tries = 1): void {
    if (this.state !== "syn-sent") return;
    if (tries > SYN_TRIES) {
      this.state = "closed";
      this.#settle?.reject(new Error(`no answer to ${SYN_TRIES} SYNs`));
      this.#wake();
      return;
    }
    this.#emit(this.#iss, 0, TCP_SYN, CLIENT_WINDOW, undefined, {
      mss: CLIENT_MSS,
      windowScale: CLIENT_WINDOW_SCALE,
    });
    setTimeout(() => this.start(tries + 1), SYN_RETRY_MS);
  }

  /** Queues `data` (kept, not copied) to be sent as the connector's window allows. */
  write(data: Uint8Array): void {
    this.#pending.push(data);
    this.#queued += data.length;
    this.#push();
  }

  /** Sends a FIN once everything written went out. */
  end(): void {
    this.#finQueued = true;
    this.#push();
  }

  /** Sends a RST and forgets the connection. */
  reset(): void {
    if (this.state !== "established") return;
    this.#emit(
      this.#seq(this.#sndNxt + (this.#finSent ? 1 : 0)),
      this.#rcvNxt,
      TCP_RST | TCP_ACK,
      0,
    );
    this.state = "reset";
    this.#wake();
  }

  /** The connector's window as last advertised (scaled). */
  get window(): number {
    return this.#sndWnd;
  }

  /** All bytes received so far, joined. */
  receivedData(): Uint8Array {
    const out = new Uint8Array(this.receivedBytes);
    let at = 0;
    for (const chunk of this.received) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  /** Resolves when `done()` holds after a segment (or at once). */
  async until(done: () => boolean): Promise<void> {
    while (!done()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Takes one segment from the connector. */
  segment(seg: TcpSegment): void {
    if (seg.flags & TCP_RST) {
      if (this.state === "syn-sent") this.#settle?.reject(new Error("connection refused (RST)"));
      this.state = "reset";
      this.#wake();
      return;
    }
    if (this.state === "syn-sent") {
      if ((seg.flags & (TCP_SYN | TCP_ACK)) !== (TCP_SYN | TCP_ACK)) return;
      this.#rcvNxt = (seg.seq + 1) >>> 0;
      this.#peerScale = seg.options.windowScale ?? 0;
      this.#mss = seg.options.mss ?? 536;
      this.#sndWnd = seg.window; // never scaled in a SYN
      this.state = "established";
      this.#emit(this.#seq(0), this.#rcvNxt, TCP_ACK, CLIENT_WINDOW);
      this.#settle?.resolve();
      this.#push();
      this.#wake();
      return;
    }
    if (this.state !== "established") return;
    if (seg.flags & TCP_ACK) {
      // The data offset acknowledged; one past the data is our FIN, not data.
      const acked = Math.min((seg.ack - this.#seq(0)) >>> 0, this.#sndUna + this.#queued);
      if (acked >= this.#sndUna) {
        this.#take(acked - this.#sndUna);
        this.#sndUna = this.acked = acked;
        this.#sndWnd = seg.window * 2 ** this.#peerScale;
      }
    }
    let reply = false;
    if (seg.payload.length > 0 && seg.seq === this.#rcvNxt) {
      this.received.push(seg.payload.slice());
      this.receivedBytes += seg.payload.length;
      this.#rcvNxt = (this.#rcvNxt + seg.payload.length) >>> 0;
      reply = true;
    }
    if (seg.flags & TCP_FIN && ((seg.seq + seg.payload.length) >>> 0) === this.#rcvNxt) {
      this.#rcvNxt = (this.#rcvNxt + 1) >>> 0;
      this.finReceived = true;
      reply = true;
    }
    if (reply) {
      const seq = this.#seq(this.#sndNxt + (this.#finSent ? 1 : 0));
      this.#emit(seq, this.#rcvNxt, TCP_ACK, CLIENT_WINDOW);
    }
    this.#push();
    this.#wake();
  }

  /** Sends what the window allows. */
  #push(): void {
    if (this.state !== "established") return;
    const end = this.#sndUna + this.#queued;
    while (this.#sndNxt < end) {
      const room = this.#sndUna + this.#sndWnd - this.#sndNxt;
      const length = Math.min(this.#mss, room, end - this.#sndNxt);
      if (length <= 0) break;
      const payload = this.#slice(this.#sndNxt, length);
      this.#emit(
        this.#seq(this.#sndNxt),
        this.#rcvNxt,
        TCP_ACK | TCP_PSH,
        CLIENT_WINDOW,
        payload,
      );
      this.#sndNxt += length;
    }
    if (this.#finQueued && !this.#finSent && this.#sndNxt === end) {
      this.#finSent = true;
      this.#emit(this.#seq(this.#sndNxt), this.#rcvNxt, TCP_FIN | TCP_ACK, CLIENT_WINDOW);
    }
  }

  /** `length` bytes from data offset `offset` (at or after `#sndUna`). */
  #slice(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let skip = offset - this.#sndUna;
    let at = 0;
    for (const chunk of this.#pending) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      const piece = chunk.subarray(skip, Math.min(chunk.length, skip + length - at));
      out.set(piece, at);
      at += piece.length;
      skip = 0;
      if (at === length) break;
    }
    return out;
  }

  /** Drops `count` acknowledged bytes from the front of what was written. */
  #take(count: number): void {
    let left = count;
    while (left > 0 && this.#pending.length > 0) {
      const first = this.#pending[0];
      if (first.length <= left) {
        left -= first.length;
        this.#pending.shift();
      } else {
        this.#pending[0] = first.subarray(left);
        left = 0;
      }
    }
    this.#queued -= count;
  }

  /** Sequence number of data offset `offset`. */
  #seq(offset: number): number {
    return (this.#iss + 1 + offset) >>> 0;
  }

  #emit(
    seq: number,
    ack: number,
    flags: number,
    window: number,
    payload?: Uint8Array,
    options?: TcpSegment["options"],
  ): void {
    const wire = this.#wire;
    this.#wire.toConnector(buildSegment(
      {
        local: wire.agent,
        remote: wire.service,
        localPort: this.localPort,
        remotePort: this.remotePort,
      },
      {
        seq,
        ack,
        flags,
        window,
        options,
        payloadLength: payload?.length ?? 0,
        fill: payload ? (out, at) => out.set(payload, at) : undefined,
      },
    ));
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}
