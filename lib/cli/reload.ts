/** Reloading a long-running command's files (certificate, key, CA, access list) on SIGHUP. */
import { getLogger } from "@logtape/logtape";

/**
 * Calls `reload` on each SIGHUP, one reload at a time (SIGHUPs during a reload
 * run one more reload after it). `reload` resolves with what changed, logged
 * at info as one line (`reloaded certificate conn-1 (serial …, expires
 * 2027-12-02), CA`), or rejects: the error (naming the bad file) is logged at
 * error level and the daemon runs on with what it had. Returns a function
 * that stops listening.
 */
export function reloadOnHangup(role: string, reload: () => Promise<string[]>): () => void {
  const log = getLogger(["ztna", role]);
  let running: Promise<void> | null = null;
  let again = false;
  const run = async () => {
    do {
      again = false;
      try {
        const changes = await reload();
        if (changes.length === 0) log.info("reloaded: nothing changed");
        else log.info("reloaded {changes}", { changes: changes.join(", ") });
      } catch (error) {
        log.error("reload failed, still using the previous files: {error}", {
          error: (error as Error).message ?? String(error),
        });
      }
    } while (again);
    running = null;
  };
  const handler = () => {
    if (running) {
      again = true;
      return;
    }
    running = run();
  };
  Deno.addSignalListener("SIGHUP", handler);
  return () => Deno.removeSignalListener("SIGHUP", handler);
}
