/** `ztna probe quic HOST:PORT ...`: checks a QUIC service (handshake, RTT, MTU, DATAGRAMs, certificate). */
import { integerOption, requireOption } from "../cli/args.ts";
import { defineCommand } from "../cli/command.ts";
import { UsageError } from "../cli/errors.ts";
import { isIpLiteral, parseHostNamePort } from "../net/resolve.ts";
import {
  DEFAULT_PROBE_ALPN,
  DEFAULT_PROBE_TIMEOUT_MS,
  formatQuicProbeReport,
  probeQuic,
} from "./quic.ts";

const USAGE = `Usage: ztna probe quic HOST:PORT [--server-name NAME] --ca CA.pem [options]

Connects to a QUIC service (e.g. a relay), verifies its certificate against
CA.pem and NAME, waits for the handshake, prints the peer address, handshake
time, ALPN, RTT, path MTU, DATAGRAM support and the server's certificate, then
closes the connection. A host name is resolved (A and AAAA, /etc/hosts too) and
its addresses are tried in turn until one answers.

Arguments:
  HOST:PORT            relay.example.com:443, 1.2.3.4:443 or [2001:db8::1]:443

Options:
  --server-name NAME   name the server's certificate must carry, sent as SNI
                       (default the host name; required when HOST is an IP address)
  --ca FILE            PEM CA certificate(s) trusted to sign the server's (required)
  --alpn PROTOCOL      ALPN protocol to offer (default "${DEFAULT_PROBE_ALPN}")
  --cert FILE          PEM client certificate chain, for servers requiring mutual TLS
  --key FILE           PEM (PKCS#8) private key of --cert
  --timeout-ms N       give up on an address after N milliseconds (default ${DEFAULT_PROBE_TIMEOUT_MS})
  --json               print one JSON object instead of text

Exit status: 0 the service answered and was verified, 1 the probe failed, 2 usage error.`;

/** The `quic` probe, over the arguments after `ztna probe quic`. */
export const command = defineCommand({
  usage: USAGE,
  allowPositionals: true,
  options: {
    "server-name": { type: "string" },
    ca: { type: "string" },
    alpn: { type: "string" },
    cert: { type: "string" },
    key: { type: "string" },
    "timeout-ms": { type: "string" },
    json: { type: "boolean" },
  },
  async run({ values, positionals }) {
    const [target, extra] = positionals;
    if (target === undefined) throw new UsageError("missing HOST:PORT of the QUIC service");
    if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
    let peer;
    try {
      peer = parseHostNamePort(target);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    if ((values.cert === undefined) !== (values.key === undefined)) {
      throw new UsageError("--cert and --key go together");
    }
    const options = {
      peer,
      serverName: isIpLiteral(peer.hostname)
        ? requireOption(values["server-name"], "server-name")
        : values["server-name"] || peer.hostname.replace(/\.$/, ""),
      caFile: requireOption(values.ca, "ca"),
      alpn: values.alpn ?? DEFAULT_PROBE_ALPN,
      certificateFile: values.cert,
      keyFile: values.key,
      timeoutMs: integerOption(values["timeout-ms"], "timeout-ms", DEFAULT_PROBE_TIMEOUT_MS),
    };
    const report = await probeQuic(options);
    console.log(values.json ? JSON.stringify(report) : formatQuicProbeReport(report));
  },
});
