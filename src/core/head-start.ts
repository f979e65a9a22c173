/**
 * The one-shot worker's head start (cli.ts runs it before loading the command tree): take the
 * apply lock, and if we got it start Python and its import of cloud-init at once, so that
 * Python's ~130 ms of start and imports overlap node loading the pipeline's modules instead of
 * following them. The lock comes first: a worker that finds it held leaves without Python (storms
 * start several). runWorker() takes the lock over (takeHeadStartLock); the Python child is taken
 * over by the first startBridge() (bridge/index.ts).
 *
 * Only for a plain `worker` run by root, or `worker --lock-fd N` (what the udev program starts
 * when it took the lock for the worker, see lock.ts adoptHandedLock: no flock run before Python):
 * --wait (the boot replay, by hand) waits for the lock on its normal path, --help must not lock
 * anything. Any failure here leaves the normal path to do it all.
 */
import { getPriority, setPriority } from 'node:os';
import type { Lock } from '../lock.js';
import { DAEMON_NICE } from '../daemon/supervise.js';

let taken: { lock: Lock | null } | undefined;

/** An fd the udev program may hand over (`worker --lock-fd N`): 3 to 9, else undefined. */
export function parseLockFd(v: string | undefined): number | undefined {
  return v !== undefined && /^[3-9]$/.test(v) ? Number(v) : undefined;
}

export async function workerHeadStart(args: string[]): Promise<void> {
  const fd = args.length === 2 && args[0] === '--lock-fd' ? parseLockFd(args[1]) : undefined;
  if (process.getuid?.() !== 0 || (args.length > 0 && fd === undefined)) return;
  try {
    const { adoptHandedLock, tryLock } = await import('../lock.js');
    // A lock the udev program took for us (checked, else closed) or our own.
    const lock = (fd !== undefined ? await adoptHandedLock(fd) : null) ?? (await tryLock());
    taken = { lock };
    if (lock) {
      workerNice();
      (await import('../../bridge/index.js')).prestartBridge();
    }
  } catch {
    taken = undefined;
  }
}

/** The head start's lock result (once): {lock: null} = another worker holds it; undefined = no head start. */
export function takeHeadStartLock(): { lock: Lock | null } | undefined {
  const t = taken;
  taken = undefined;
  return t;
}

/**
 * The daemon's nice value for the one-shot worker too, set before Python is spawned so that it and
 * its children (ifup, DHCP clients) inherit it: in a storm the first udev program starts this
 * worker, and the other NICs' udev programs (each must return in milliseconds) then compete with it
 * for the CPU. Only weighs under contention; never raises a priority.
 */
export function workerNice(): void {
  try {
    if (getPriority() < DAEMON_NICE) setPriority(DAEMON_NICE);
  } catch {
    // not permitted (some sandboxes): the caller's priority
  }
}
