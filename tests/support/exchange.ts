/** Traffic a test client pushes through a connection to an echoing peer, with what came back. */
import type { Connection } from "../../lib/quic/connection.ts";
import { pseudoRandomBytes, sha256, waitFor } from "./bytes.ts";

/**
 * Sends `count` numbered DATAGRAMs to an echoing peer in paced bursts (so no
 * queue overflows) and returns how many distinct ones came back.
 */
export async function datagramRoundTrips(
  connection: Connection,
  count: number,
  size = 1000,
): Promise<number> {
  const seen = new Set<number>();
  const stop = connection.onDatagram((data) => {
    seen.add(new DataView(data.buffer, data.byteOffset).getUint32(0));
  });
  const payload = new Uint8Array(size);
  const burst = 200;
  for (let sent = 0; sent < count;) {
    const end = Math.min(count, sent + burst);
    for (; sent < end; sent++) {
      new DataView(payload.buffer).setUint32(0, sent);
      if (!connection.sendDatagram(payload)) throw new Error(`DATAGRAM ${sent} was not queued`);
    }
    await waitFor(() => seen.size >= sent, `echo of DATAGRAM ${sent - 1}`, 5_000).catch(() => {});
  }
  await waitFor(() => seen.size >= count, `all ${count} DATAGRAM echoes`, 2_000).catch(() => {});
  stop();
  return seen.size;
}

/** Sends `size` deterministic bytes on a new stream and reads the echo; returns both digests. */
export async function streamRoundTrip(
  connection: Connection,
  size: number,
): Promise<{ sent: string; received: string; receivedLength: number }> {
  const data = pseudoRandomBytes(size, size);
  const stream = connection.openStream();
  const [, back] = await Promise.all([stream.write(data, true), stream.readAll(size * 2)]);
  return { sent: sha256(data), received: sha256(back), receivedLength: back.length };
}
