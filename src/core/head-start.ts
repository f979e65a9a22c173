/**
 * The one-shot worker's head start (cli.ts runs it before loading the command tree): take the
 * apply lock, and if we got it start Python and its import of cloud-init at once, so that
 * Python's ~130 ms of start and imports overlap node loading the pipeline's modules instead of
 * following them. The lock comes first: a worker that finds it held leaves without Python (storms
 * start several). runWorker() takes the lock over (takeHeadStartLock); the Python child is taken
 * over by the first startBridge() (bridge/index.ts).
 *
 * Only for a plain `worker` run by root (what the udev program starts): --wait (the boot replay,
 * by hand) waits for the lock on its normal path, --help must not lock anything. Any failure here
 * leaves the normal path to do it all.
 */
import type { Lock } from '../lock.js';

let taken: { lock: Lock | null } | undefined;

export async function workerHeadStart(args: string[]): Promise<void> {
  if (process.getuid?.() !== 0 || args.length > 0) return;
  try {
    const { tryLock } = await import('../lock.js');
    const lock = await tryLock();
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
