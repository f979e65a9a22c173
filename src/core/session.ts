/**
 * One bridge session: start Python, load the cached instance, run, always stop Python
 * (node would otherwise never exit: pythonia keeps the process alive).
 */
import { startBridge, type Bridge, type InstanceSummary } from '../../bridge/index.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { openInstance } from './instance-record.js';

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UserError(`${what} must run as root (it reads cloud-init's cache and changes network configuration)`, 4);
  }
}

export interface Session {
  bridge: Bridge;
  summary: InstanceSummary;
}

export async function withSession<T>(fn: (s: Session) => Promise<T>): Promise<T> {
  const bridge = await startBridge({ log });
  try {
    const { summary } = await openInstance(bridge);
    return await fn({ bridge, summary });
  } finally {
    await bridge.close();
  }
}

/**
 * Run `fn` holding the apply lock that the worker and the daemon also take, so a manual
 * apply or refresh never interleaves with event handling (flock: released if we die).
 */
export async function withApplyLock<T>(fn: () => Promise<T>, timeoutMs = 300_000): Promise<T> {
  const { acquireLock } = await import('../lock.js');
  const lock = await acquireLock({ timeoutMs });
  try {
    return await fn();
  } finally {
    await lock.release();
    // A hook that found the lock taken meanwhile queued its event and started no worker.
    const { pendingCount } = await import('../events/queue.js');
    if ((await pendingCount().catch(() => 0)) > 0) (await import('../hook.js')).ensureWorker();
  }
}
