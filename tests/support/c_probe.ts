/** Compiles and runs a small C program that prints `name=value` lines, for layout tests. */
import assert from "node:assert/strict";

/** The program's `name=value` output as numbers; fails the test if it does not compile. */
export async function runCProbe(
  source: string,
  includeDirs: string[] = [],
): Promise<Record<string, number>> {
  const dir = await Deno.makeTempDir({ prefix: "ztna-c-probe-" });
  try {
    await Deno.writeTextFile(`${dir}/probe.c`, source);
    const compile = await new Deno.Command("cc", {
      args: [...includeDirs.flatMap((d) => ["-I", d]), "-o", `${dir}/probe`, `${dir}/probe.c`],
      stderr: "piped",
    }).output();
    assert.equal(compile.code, 0, new TextDecoder().decode(compile.stderr));
    const run = await new Deno.Command(`${dir}/probe`, { stdout: "piped" }).output();
    assert.equal(run.code, 0, "the C probe failed");
    return Object.fromEntries(
      new TextDecoder().decode(run.stdout).trim().split("\n").map((line) => {
        const [name, value] = line.split("=");
        return [name, Number(value)];
      }),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
