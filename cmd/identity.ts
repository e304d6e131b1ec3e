/** `ztna identity init-ca|issue|show`: the organisation's CA and node identities, no openssl. */
import { integerOption, requireOption } from "../lib/cli/args.ts";
import { defineCommand } from "../lib/cli/command.ts";
import { UsageError } from "../lib/cli/errors.ts";
import { DEFAULT_CA_NAME, initCa } from "../lib/identity/ca_dir.ts";
import {
  checkIssueRequest,
  DEFAULT_IDENTITY_DAYS,
  issueToDirectory,
  ROLES,
  type ValidIssueRequest,
} from "../lib/identity/issue.ts";
import { InvalidIdentityRequest } from "../lib/identity/names.ts";
import { formatCaCreated, formatIssued } from "../lib/identity/report.ts";
import { formatIdentitySummary, summarizeCertificateFile } from "../lib/identity/summary.ts";

const USAGE = `Usage: ztna identity init-ca --dir DIR [--name "Example Org"]
       ztna identity issue --ca-dir DIR --name NAME --role ROLE [grants] --out OUTDIR
       ztna identity show FILE.crt [--json]

Creates the organisation's CA and issues the identities (certificate + key)
of relays, connectors and agents. What an identity may do is written into its
certificate by the CA (docs/identities.md); the relay enforces it.

init-ca    creates DIR/ca.crt and DIR/ca.key (0600); never overwrites them.
           Keep ca.key offline: the relay needs only ca.crt.
issue      writes OUTDIR/NAME.crt, OUTDIR/NAME.key (0600) and OUTDIR/ca.crt,
           everything the node needs.
show       prints a certificate's name, role, services, hosts, validity, issuer.

Options of init-ca:
  --dir DIR            directory for ca.crt and ca.key (created 0700) (required)
  --name NAME          the CA's common name (default "${DEFAULT_CA_NAME}")

Options of issue:
  --ca-dir DIR         directory holding ca.crt and ca.key (required)
  --name NAME          node name, a DNS label such as conn-1 (required)
  --role ROLE          ${ROLES.join(", ")} (required)
  --service NAME       a service the connector may publish; repeatable, at least one
                       (connectors only)
  --host NAME          a DNS name nodes dial the relay by; repeatable, at least one
                       (relays only)
  --days N             validity in days (default ${DEFAULT_IDENTITY_DAYS})
  --out OUTDIR         directory to write the identity to (created 0700) (required)

Options of show:
  --json               print one JSON object instead of text

Exit status: 0 done, 1 failure (e.g. files already exist), 2 usage error.`;

const FLAGS_OF: Readonly<Record<string, readonly string[]>> = {
  "init-ca": ["dir", "name"],
  issue: ["ca-dir", "name", "role", "service", "host", "days", "out"],
  show: ["json"],
};

/** Throws a UsageError for an option given to a subcommand it does not apply to. */
function rejectForeignFlags(action: string, values: Record<string, unknown>): void {
  for (const flag of Object.values(FLAGS_OF).flat()) {
    if (values[flag] !== undefined && !FLAGS_OF[action].includes(flag)) {
      throw new UsageError(`option '--${flag}' does not apply to '${action}'`);
    }
  }
}

/** `init-ca`: creates the CA. */
async function runInitCa(dir: string, commonName: string): Promise<void> {
  if (commonName.trim() === "") throw new UsageError("--name must not be empty");
  const created = await initCa(dir, commonName);
  console.log(formatCaCreated(dir, commonName, created, created.ca.certificate.notAfter));
}

/** `issue`: issues one identity. */
async function runIssue(request: ValidIssueRequest): Promise<void> {
  const issued = await issueToDirectory(request);
  for (const warning of issued.warnings) console.error(`ztna identity: warning: ${warning}`);
  console.log(formatIssued(request, issued));
}

/** `show`: prints a certificate's grants. */
async function runShow(file: string, json: boolean): Promise<void> {
  const summary = await summarizeCertificateFile(file);
  console.log(json ? JSON.stringify(summary) : formatIdentitySummary(summary));
}

/** The `identity` command. */
export const command = defineCommand({
  usage: USAGE,
  allowPositionals: true,
  options: {
    dir: { type: "string" },
    name: { type: "string" },
    "ca-dir": { type: "string" },
    role: { type: "string" },
    service: { type: "string", multiple: true },
    host: { type: "string", multiple: true },
    days: { type: "string" },
    out: { type: "string" },
    json: { type: "boolean" },
  },
  async run({ values, positionals }) {
    const [action, ...rest] = positionals;
    const actions = Object.keys(FLAGS_OF).join(", ");
    if (action === undefined) throw new UsageError(`missing what to do (${actions})`);
    if (!Object.hasOwn(FLAGS_OF, action)) {
      throw new UsageError(`unknown action '${action}' (${actions})`);
    }
    rejectForeignFlags(action, values);
    const extra = action === "show" ? rest.slice(1) : rest;
    if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
    if (action === "init-ca") {
      return await runInitCa(requireOption(values.dir, "dir"), values.name ?? DEFAULT_CA_NAME);
    }
    if (action === "show") {
      if (rest[0] === undefined) throw new UsageError("missing the certificate file to show");
      return await runShow(rest[0], values.json === true);
    }
    let request: ValidIssueRequest;
    try {
      request = checkIssueRequest({
        caDir: requireOption(values["ca-dir"], "ca-dir"),
        name: requireOption(values.name, "name"),
        role: requireOption(values.role, "role"),
        services: values.service ?? [],
        hosts: values.host ?? [],
        days: integerOption(values.days, "days", DEFAULT_IDENTITY_DAYS, 1, 36_500),
        outDir: requireOption(values.out, "out"),
      });
    } catch (error) {
      if (error instanceof InvalidIdentityRequest) throw new UsageError(error.message);
      throw error;
    }
    await runIssue(request);
  },
});
