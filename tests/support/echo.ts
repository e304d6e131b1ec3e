/** Echo behaviour for test peers: DATAGRAMs come back as DATAGRAMs, streams come back to FIN. */
import type { Connection } from "../../lib/quic/connection.ts";

/** Makes `connection` echo every DATAGRAM and every stream the peer opens. */
export function echo(connection: Connection): void {
  connection.ondatagram = (data) => {
    connection.sendDatagram(data);
  };
  connection.onstream = async (stream) => {
    try {
      for (let chunk = await stream.read(); chunk; chunk = await stream.read()) {
        await stream.write(chunk);
      }
      await stream.close();
    } catch {
      // The connection closed under the echo; the test observing it reports that.
    }
  };
}
