/** Stopping child processes: a signal that tolerates exited processes, and SIGTERM-then-SIGKILL. */

/** How long a stopped process gets after SIGTERM. */
export const TERM_GRACE_MS = 3_000;
/** How long a process gets after SIGKILL. */
export const KILL_GRACE_MS = 5_000;

/** Sends `signal` to `process`, ignoring one that has already exited. */
export function kill(process: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    process.kill(signal);
  } catch {
    // Already exited.
  }
}

/** SIGTERM, wait; then SIGKILL, wait until it has exited. */
export async function terminate(process: Deno.ChildProcess): Promise<void> {
  kill(process, "SIGTERM");
  const exited = await Promise.race([process.status.then(() => true), sleep(TERM_GRACE_MS)]);
  if (exited) return;
  kill(process, "SIGKILL");
  await Promise.race([process.status, sleep(KILL_GRACE_MS)]);
}

/** Resolves with `false` after `ms` milliseconds. */
export function sleep(ms: number): Promise<false> {
  return new Promise((resolve) => setTimeout(() => resolve(false), ms));
}
