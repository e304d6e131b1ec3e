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
 * is full. At most `MAX_IN_FLIGHT` batches wait on the device's thread; past
 * that the worker stops reading and the kernel queue absorbs (or drops) the
 * excess, as it would for any slow TUN reader.
 */
import { errno, LINUX, syscallError } from "../../ffi/libc.ts";
import { PollFd, TUN, tunLibc } from "../../ffi/tun.ts";
import { LENGTH_PREFIX, type ReaderMessage, type ReaderStart, ReaderState } from "./batch.ts";

/** Bytes of one batch. */
const BATCH_BYTES = 64 * 1024;
/** Packets in one batch. */
const BATCH_PACKETS = 128;
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

  while (!stopping()) {
    if (count === BATCH_PACKETS || used + room > BATCH_BYTES) flush();
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

function readFailure(name: string, call: string, code: number): Error & { errno: number } {
  const text = `reading from TUN device ${name}: ${syscallError(call, code).message}`;
  return Object.assign(new Error(text), { errno: code });
}
