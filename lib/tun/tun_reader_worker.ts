/**
 * The TUN reader: a Worker that reads packets with synchronous `read()` calls
 * on the non-blocking TUN descriptor until it would block, then sleeps in a
 * synchronous `poll()` on the descriptor and the device's eventfd. Under load
 * this is one `read()` per packet, like a plain blocking loop; when idle the
 * eventfd wakes it for close (closing the TUN fd would not wake a blocked
 * `read()`: the reading thread holds its own reference to the file).
 *
 * Packets are copied from one reused buffer into an exactly sized batch that
 * is transferred to the device, flushed when the reader runs dry or the batch
 * is full. With offloads on (`vnetHeader`) each read is a virtio header and a
 * packet of up to 64 KiB: a GSO super-packet is split here, off the event
 * loop, into MTU-sized packets, and a partial checksum is completed, so the
 * device only ever hands on ordinary packets. At most `MAX_IN_FLIGHT` batches wait on the device's thread; past
 * that the worker stops reading and the kernel queue absorbs (or drops) the
 * excess, as it would for any slow TUN reader.
 */
import { errno, LINUX, syscallError } from "../../ffi/libc.ts";
import { PollFd, TUN, TUN_OFFLOAD, tunLibc } from "../../ffi/tun.ts";
import { LENGTH_PREFIX, type ReaderMessage, type ReaderStart, ReaderState } from "./batch.ts";
import { completeChecksum } from "./offload/checksum_completion.ts";
import { isGsoType, type SegmentSink, splitGso } from "./offload/gso_split.ts";
import { decodeVirtioHeader, VIRTIO_HEADER_BYTES } from "./offload/virtio_header.ts";

/** Bytes of one batch. */
const BATCH_BYTES = 256 * 1024;
/** Packets in one batch. */
const BATCH_PACKETS = 256;
/** Largest read with offloads on: the virtio header and a 64 KiB IP packet. */
const OFFLOAD_READ_BYTES = VIRTIO_HEADER_BYTES + 0xffff;
/** Most header bytes a segment repeats: IPv6 (40) plus a TCP header with options (60). */
const MAX_SEGMENT_HEADERS = 100;
/** Batches posted and not yet handled before the worker stops reading. */
const MAX_IN_FLIGHT = 64;

/** The parts of the worker scope this file uses. */
interface WorkerScope {
  onmessage: ((event: MessageEvent<ReaderStart>) => void) | null;
  postMessage(message: ReaderMessage, transfer?: Transferable[]): void;
  close(): void;
}

const scope = self as unknown as WorkerScope;

scope.onmessage = (event) => {
  scope.onmessage = null;
  try {
    readLoop(event.data);
    scope.postMessage({ type: "stopped" });
  } catch (error) {
    const code = (error as { errno?: number }).errno ?? 0;
    scope.postMessage({ type: "failed", message: (error as Error).message, errno: code });
  }
  scope.close();
};

function readLoop(start: ReaderStart): void {
  const { read, poll } = tunLibc();
  const state = new Int32Array(start.state);
  const staging = new Uint8Array(BATCH_BYTES);
  const stagingView = new DataView(staging.buffer);
  const room = start.mtu + LENGTH_PREFIX;
  const capacity = BigInt(start.mtu);
  let used = 0;
  let count = 0;

  const pollFds = new Uint8Array(2 * PollFd.size);
  const pollView = new DataView(pollFds.buffer);
  pollView.setInt32(PollFd.fd, start.fd, true);
  pollView.setInt16(PollFd.events, TUN.POLLIN, true);
  pollView.setInt32(PollFd.size + PollFd.fd, start.eventFd, true);
  pollView.setInt16(PollFd.size + PollFd.events, TUN.POLLIN, true);

  const stopping = () => Atomics.load(state, ReaderState.stop) !== 0;
  const flush = () => {
    if (count === 0) return;
    for (;;) {
      const inFlight = Atomics.load(state, ReaderState.inFlight);
      if (inFlight < MAX_IN_FLIGHT || stopping()) break;
      Atomics.wait(state, ReaderState.inFlight, inFlight, 100);
    }
    const batch = staging.slice(0, used);
    Atomics.add(state, ReaderState.inFlight, 1);
    scope.postMessage({ type: "batch", buffer: batch.buffer, count }, [batch.buffer]);
    used = 0;
    count = 0;
  };

  const offload = start.vnetHeader ? offloadReader(start, state) : undefined;
  const sink: SegmentSink = {
    segment(length) {
      stagingView.setUint16(used, length, true);
      const view = staging.subarray(used + LENGTH_PREFIX, used + LENGTH_PREFIX + length);
      used += LENGTH_PREFIX + length;
      count++;
      return view;
    },
  };

  while (!stopping()) {
    if (count === BATCH_PACKETS || used + room > BATCH_BYTES) flush();
    if (offload) {
      const length = offload.read();
      if (length > 0) {
        offload.handle(length, sink, used, count, flush);
        continue;
      }
      if (length === 0) continue;
    } else {
      const length = Number(read(start.fd, staging.subarray(used + LENGTH_PREFIX), capacity));
      // A packet longer than the MTU (only if someone raised it later) was truncated: drop it.
      if (length > start.mtu) continue;
      if (length > 0) {
        stagingView.setUint16(used, length, true);
        used += LENGTH_PREFIX + length;
        count++;
        continue;
      }
      if (length === 0) continue;
    }
    const code = errno();
    if (code === LINUX.EINTR) continue;
    if (code !== LINUX.EAGAIN) throw readFailure(start.name, "read", code);
    flush();
    if (stopping()) break;
    if (poll(pollFds, 2n, -1) < 0) {
      const pollCode = errno();
      if (pollCode !== LINUX.EINTR) throw readFailure(start.name, "poll", pollCode);
      continue;
    }
    if (pollView.getInt16(PollFd.size + PollFd.revents, true) !== 0) break;
    // POLLERR/POLLHUP on the TUN fd (device deleted): the next read names the error.
  }
}

/** Reads with a virtio header into a scratch buffer, then splits or copies into the batch. */
function offloadReader(start: ReaderStart, state: Int32Array) {
  const { read } = tunLibc();
  const scratch = new Uint8Array(OFFLOAD_READ_BYTES);
  const capacity = BigInt(OFFLOAD_READ_BYTES);
  const count = (slot: number, by = 1) => Atomics.add(state, slot, by);
  return {
    /** One read: bytes of virtio header plus packet, 0 to retry, or -1 (see errno). */
    read(): number {
      const length = Number(read(start.fd, scratch, capacity));
      if (length < 0) return -1;
      return length <= VIRTIO_HEADER_BYTES ? 0 : length;
    },
    /**
     * Hands the `length` bytes read on to `sink`; `flush` first when the batch
     * (`used` bytes, `packets` packets) has no room for all the segments.
     */
    handle(
      length: number,
      sink: SegmentSink,
      used: number,
      packets: number,
      flush: () => void,
    ): void {
      const header = decodeVirtioHeader(scratch);
      const packet = scratch.subarray(VIRTIO_HEADER_BYTES, length);
      if (packet.length > Atomics.load(state, ReaderState.largestRead)) {
        Atomics.store(state, ReaderState.largestRead, packet.length);
      }
      if (!isGsoType(header.gsoType)) {
        const needsChecksum = (header.flags & TUN_OFFLOAD.VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;
        if (
          packet.length > start.mtu ||
          (needsChecksum && !completeChecksum(packet, header.csumStart, header.csumOffset))
        ) {
          count(ReaderState.dropped);
          return;
        }
        if (needsChecksum) count(ReaderState.checksumsCompleted);
        if (packets + 1 > BATCH_PACKETS || used + LENGTH_PREFIX + packet.length > BATCH_BYTES) {
          flush();
        }
        sink.segment(packet.length).set(packet);
        return;
      }
      const segments = Math.ceil(packet.length / Math.max(1, header.gsoSize));
      const room = packet.length + segments * (MAX_SEGMENT_HEADERS + LENGTH_PREFIX);
      if (room > BATCH_BYTES || segments > BATCH_PACKETS) {
        count(ReaderState.dropped);
        return;
      }
      if (packets + segments > BATCH_PACKETS || used + room > BATCH_BYTES) flush();
      const split = splitGso(packet, header, sink);
      if (typeof split === "string") {
        count(ReaderState.dropped);
        return;
      }
      const type = header.gsoType & ~TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_ECN;
      count(
        type === TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV4
          ? ReaderState.gsoTcp4Reads
          : type === TUN_OFFLOAD.VIRTIO_NET_HDR_GSO_TCPV6
          ? ReaderState.gsoTcp6Reads
          : ReaderState.gsoUdpReads,
      );
      count(ReaderState.segmentsSplit, split);
    },
  };
}

function readFailure(name: string, call: string, code: number): Error & { errno: number } {
  const text = `reading from TUN device ${name}: ${syscallError(call, code).message}`;
  return Object.assign(new Error(text), { errno: code });
}
