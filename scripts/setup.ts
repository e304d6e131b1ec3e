/**
 * `deno task setup`: builds libquiche from the pinned quiche crate on crates.io
 * into `.cache/libquiche/` (see scripts/libquiche/mod.ts), or does nothing
 * when it is already built or `$ZTNA_LIBQUICHE` points at a library.
 *
 * Usage: deno task setup [--force] [--clean] [--out-dir DIR]
 */
import { defaultOutDir } from "./libquiche/layout.ts";
import { setupLibquiche } from "./libquiche/mod.ts";
import { SetupError } from "./libquiche/setup_error.ts";
import { QUICHE_VERSION } from "./libquiche/version.ts";

const USAGE = `Usage: deno task setup [--force] [--clean] [--out-dir DIR]

Builds libquiche ${QUICHE_VERSION} (quiche's C API with BoringSSL) from crates.io into
${defaultOutDir()}.

  --force        rebuild even if this version is already built
  --clean        also delete the build folder (sources, cargo target dir) first
  --out-dir DIR  build into DIR instead (for tests and experiments)
  -h, --help     show this help

Environment: ZTNA_LIBQUICHE=/path/to/libquiche.so skips the build and uses that file.`;

/** Parsed command line. */
interface Args {
  force: boolean;
  clean: boolean;
  outDir?: string;
  help: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { force: false, clean: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--force") args.force = true;
    else if (arg === "--clean") args.clean = true;
    else if (arg === "-h" || arg === "--help") args.help = true;
    else if (arg === "--out-dir" || arg.startsWith("--out-dir=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[++i];
      if (!value) throw new SetupError("--out-dir needs a directory");
      args.outDir = value;
    } else throw new SetupError(`unknown argument ${arg}\n\n${USAGE}`);
  }
  return args;
}

async function main(): Promise<number> {
  try {
    const args = parseArgs(Deno.args);
    if (args.help) {
      console.log(USAGE);
      return 0;
    }
    await setupLibquiche({ force: args.force, clean: args.clean, outDir: args.outDir });
    return 0;
  } catch (error) {
    if (error instanceof SetupError) console.error(`[setup] error: ${error.message}`);
    else console.error("[setup] unexpected error:", error);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main());
