/**
 * Host commands and processes for the VM tier: the lab's (argv arrays, never shell strings;
 * processes by PID + start time), plus a daemon whose output goes to a log in the caller's
 * environment and a single-process kill.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { isAlive, killRefs, refOf, type ProcRef } from '../lab/proc.js';
export { run, sleep, waitFor, which, CommandError, type RunResult, type RunOptions } from '../lab/run.js';
export { isAlive, refOf, type ProcRef };

/**
 * Start a long-running process detached from us, stdout+stderr appended to `log`. Unlike the
 * lab's spawnDaemon it keeps our environment: QEMU and the cloud side run on the host.
 */
export function spawnDaemon(argv: string[], log: string, what: string): ProcRef {
  const fd = openSync(log, 'a', 0o644);
  try {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
    child.unref();
    if (!child.pid) throw new Error(`could not start ${what}: ${argv[0]}`);
    return refOf(child.pid, what);
  } finally {
    closeSync(fd);
  }
}

/** SIGTERM (then SIGKILL after `graceMs`) one process we started; true if it was alive. */
export async function killRef(ref: ProcRef | undefined | null, graceMs = 3000): Promise<boolean> {
  if (!ref || !isAlive(ref)) return false;
  return (await killRefs([ref], graceMs)).length > 0;
}
