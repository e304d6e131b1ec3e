/** What `ztna demo` needs before it touches anything: root, the network tools, a source checkout. */
import { DENO_CONFIG } from "../netns/mod.ts";
import { MAIN } from "./nodes.ts";

/** The message for a run without root. */
export const NEEDS_ROOT = "ztna demo needs root: it creates network namespaces";

/** Tools the demo runs, and the package that usually provides each. */
const TOOLS: Record<string, string> = {
  ip: "iproute2",
  iptables: "iptables",
  ping: "iputils-ping",
};

/** True when the process runs as root. */
export function isRoot(): boolean {
  return Deno.uid() === 0;
}

/** Throws, naming what is missing, unless every tool is on PATH and ztna runs from source. */
export async function checkPrerequisites(): Promise<void> {
  const missing: string[] = [];
  for (const [tool, pkg] of Object.entries(TOOLS)) {
    if (!(await onPath(tool))) missing.push(`${tool} (${pkg})`);
  }
  if (missing.length > 0) throw new Error(`ztna demo needs ${missing.join(", ")} on PATH`);
  if (Deno.build.standalone) {
    throw new Error(
      "ztna demo runs from a source checkout (deno run -A main.ts demo), not compiled",
    );
  }
  for (const path of [DENO_CONFIG, MAIN.pathname]) {
    if (!(await isFile(path))) {
      throw new Error(
        `ztna demo runs from a source checkout (deno run -A main.ts demo): ${path} not found`,
      );
    }
  }
}

async function onPath(tool: string): Promise<boolean> {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter(Boolean);
  for (const dir of dirs) {
    if (await isFile(`${dir}/${tool}`)) return true;
  }
  return false;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}
