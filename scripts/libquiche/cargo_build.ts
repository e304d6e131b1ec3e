/** Compiles the copied quiche sources into the shared library with cargo. */
import { join } from "node:path";
import { formatDuration } from "./format_duration.ts";
import { isFile } from "./is_file.ts";
import { type Layout, libraryFileName } from "./layout.ts";
import { type CargoContext, runCargo } from "./run_cargo.ts";
import { SetupError } from "./setup_error.ts";
import { QUICHE_FEATURES } from "./version.ts";

/**
 * Runs `cargo build --release --locked --features ffi` in `paths.sourceDir`
 * (the crate ships its Cargo.lock; boring-sys builds BoringSSL from vendored
 * sources) and returns the path of the built library.
 */
export async function cargoBuild(paths: Layout, context: CargoContext): Promise<string> {
  const features = QUICHE_FEATURES.join(",");
  context.progress(
    `cargo build --release --locked --features ${features} (several minutes from scratch; ` +
      `full log: ${paths.log})`,
  );
  const started = Date.now();
  await runCargo(
    context,
    ["build", "--release", "--locked", "--features", features, "--target-dir", paths.targetDir],
    paths.sourceDir,
  );
  context.progress(`cargo build finished in ${formatDuration(Date.now() - started)}`);
  const built = join(paths.targetDir, "release", libraryFileName());
  if (!isFile(built)) {
    throw new SetupError(`cargo succeeded but ${built} is missing; see ${paths.log}`);
  }
  return built;
}
