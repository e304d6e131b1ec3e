/** The process's open-file limit, as Linux reports it. */

/**
 * The soft RLIMIT_NOFILE of this process (Deno raises it to the hard limit at start), from
 * /proc/self/limits; undefined where that cannot be read or says "unlimited".
 */
export function openFileLimit(): number | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync("/proc/self/limits");
  } catch {
    return undefined;
  }
  const match = /^Max open files\s+(\d+)\s/m.exec(text);
  return match ? Number(match[1]) : undefined;
}
