/**
 * The one-shot worker (started by the udev program when no daemon runs): drains the queue with the
 * pipeline under the apply lock, then leaves.
 *
 *   lock (cli.ts may have taken it and started Python: core/head-start.ts) → sweep stale temp
 *        files → wait for boot → drainOnce() until the queue is empty
 *        → release, then re-check the queue (an event queued while we held the lock is seen
 *          here, see hook.ts) → lock again or leave
 */
import { loadConfig } from '../config.js';
import { tryLock, acquireLock, adoptHandedLock, releaseThenRecheck, type Lock } from '../lock.js';
import { newBridgeManager } from '../core/bridges.js';
import { stopPrestarted } from '../../bridge/index.js';
import { Pipeline } from './pipeline.js';
import { defaultDeps } from './deps.js';
import { waitForBoot } from './gate.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';
import { sweepStaleTemps } from '../util/sweep.js';
import { takeHeadStartLock } from '../core/head-start.js';

export interface WorkerOptions {
  /** Wait for the lock instead of leaving when another worker holds it. */
  waitForLock?: boolean;
  /** The fd on which the udev program took the lock for us (`worker --lock-fd`), if the head start did not adopt it. */
  handedLockFd?: number | undefined;
}

export async function runWorker(opts: WorkerOptions = {}): Promise<number> {
  // cli.ts may have taken the lock already (and started Python): see core/head-start.ts.
  const head = takeHeadStartLock();
  let cfg;
  try {
    cfg = await loadConfig();
  } catch (e) {
    await head?.lock?.release();
    throw e;
  }
  // A handed lock the head start did not adopt is adopted (or closed, dropping it) before tryLock,
  // which would otherwise find it held by our own fd and leave the queue to nobody.
  const handed = !head && opts.handedLockFd !== undefined ? await adoptHandedLock(opts.handedLockFd) : null;
  let lock: Lock | null = head ? head.lock : handed ?? (opts.waitForLock ? await acquireLock({ timeoutMs: 600_000 }) : await tryLock());
  if (!lock) {
    log('debug', 'another worker holds the lock; it will see our events');
    return 0;
  }
  // Temp files of writers killed mid-write (one worker at a time does this: we hold the lock).
  await sweepStaleTemps();
  const bridges = newBridgeManager();
  const pipeline = new Pipeline(defaultDeps(() => cfg, bridges));
  let rc = 0;
  try {
    while (lock) {
      await waitForBoot(250, () => log('info', 'waiting for cloud-init to finish booting; events stay queued'));
      let outcome;
      try {
        outcome = await pipeline.drainOnce();
      } catch (e) {
        // Unexpected (bridge keeps dying, cache unreadable): keep the events, report, stop.
        log('error', 'worker failed; events stay queued', { error: oneLine(e) });
        rc = 1;
        break;
      }
      if (outcome === 'failed') rc = 1;
      if (outcome !== 'empty') continue;
      const held: Lock = lock;
      lock = null;
      lock = (await releaseThenRecheck(held, () => tryLock())) ?? null;
    }
  } finally {
    await bridges.stop();
    stopPrestarted(); // a head start nobody took over (the queue was empty)
    await lock?.release();
  }
  return rc;
}
