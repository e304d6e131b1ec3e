/** Echo behaviour for test peers: DATAGRAMs come back as DATAGRAMs, streams come back to FIN. */
import type { Connection } from "../../lib/quic/connection.ts";
import type { QuicStream } from "../../lib/quic/stream.ts";

/**
 * Makes `connection` echo every DATAGRAM and every stream the peer opens,
 * except those `skip` names (a ztna session's signalling stream).
 */
export function echo(
  connection: Connection,
  skip: (stream: QuicStream) => boolean = () => false,
): void {
  connection.onDatagram((data) => {
    connection.sendDatagram(data);
  });
  connection.onStream(async (stream) => {
    if (skip(stream)) return;
    try {
      for (let chunk = await stream.read(); chunk; chunk = await stream.read()) {
        await stream.write(chunk);
      }
      await stream.close();
    } catch {
      // The connection closed under the echo; the test observing it reports that.
    }
  });
}
