/**
 * The newest wireguard-go, built by the benchmark's own setup from the Go
 * module proxy (`go install golang.zx2c4.com/wireguard@latest`) into the
 * git-ignored `.cache/wireguard-go-latest/`; it uses TUN offloads (virtio-net
 * headers, TSO/GRO) that Debian's older build lacks. Built once; later runs
 * reuse the binary.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** Where the binary is installed. */
const GOBIN = fileURLToPath(new URL("../../.cache/wireguard-go-latest/", import.meta.url));
/** The binary `go install` makes for the module's root package. */
const BINARY = `${GOBIN}wireguard`;

/** The newest wireguard-go binary, built now if missing; an Error says why it cannot be had. */
export async function latestWireguardGo(): Promise<string | Error> {
  if (await Deno.stat(BINARY).then(() => true, () => false)) return BINARY;
  console.log("  building the newest wireguard-go (go install golang.zx2c4.com/wireguard@latest)");
  try {
    const output = await new Deno.Command("go", {
      args: ["install", "golang.zx2c4.com/wireguard@latest"],
      env: { GOBIN, GOFLAGS: "-mod=mod" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      const stderr = new TextDecoder().decode(output.stderr).trim().split("\n").at(-1);
      return new Error(`go install golang.zx2c4.com/wireguard@latest failed: ${stderr}`);
    }
  } catch (error) {
    return new Error(`cannot run go to build the newest wireguard-go: ${(error as Error).message}`);
  }
  return BINARY;
}

/** The version a wireguard-go binary reports (`wireguard-go v0.0.20250522`). */
export async function wireguardVersion(binary: string): Promise<string> {
  const output = await new Deno.Command(binary, { args: ["--version"], stdout: "piped" }).output();
  return new TextDecoder().decode(output.stdout).split("\n")[0].trim();
}
