/**
 * The one-shot worker's head start (cli.ts runs it before loading the command tree): take the
 * apply lock, and if we got it start Python and its import of cloud-init at once, so that
 * Python's ~130 ms of start and imports overlap node loading the pipeline's modules instead of
 * following them. The lock comes first: a worker that finds it held leaves without Python (storms
 * start several). runWorker() takes the lock over (takeHeadStartLock); the Python child is taken
 * over by the first startBridge() (bridge/index.ts).
 *
 * Only for a plain `worker` run by root, or `worker --lock-fd N` (what the udev program starts
 * when it took the lock for the worker, see lock.ts adoptHandedLock: then Python starts first):
 * --wait (the boot replay, by hand) waits for the lock on its normal path, --help must not lock
 * anything. Any failure here leaves the normal path to do it all.
 */
import type { Lock } from '../lock.js';

let taken: { lock: Lock | null } | undefined;

/** `worker --lock-fd N` (only as the udev program starts it): the fd N that holds the lock for us. */
export function handedLockFd(args: string[]): number | undefined {
  return args.length === 2 && args[0] === '--lock-fd' && /^[3-9]$/.test(args[1]!) ? Number(args[1]) : undefined;
}

export async function workerHeadStart(args: string[]): Promise<void> {
  const fd = handedLockFd(args);
  if (process.getuid?.() !== 0 || (args.length > 0 && fd === undefined)) return;
  try {
    const lockMod = await import('../lock.js');
    if (fd !== undefined) {
      // The udev program holds the lock for us: Python can start before anything else.
      const bridge = lockMod.handedLockProblem(fd) ? undefined : await import('../../bridge/index.js');
      bridge?.prestartBridge();
      const lock = (await lockMod.adoptHandedLock(fd)) ?? (await lockMod.tryLock());
      taken = { lock };
      if (!lock) bridge?.stopPrestarted();
      else if (!bridge) (await import('../../bridge/index.js')).prestartBridge();
      return;
    }
    const lock = await lockMod.tryLock();
    taken = { lock };
    if (lock) (await import('../../bridge/index.js')).prestartBridge();
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
