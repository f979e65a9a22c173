/**
 * One-shot commands' access to cloud-init: a bridge session that is always stopped (node would
 * otherwise never exit: pythonia keeps the process alive), and the apply lock they share with the
 * worker and the daemon.
 */
import { startBridge, type Bridge, type InstanceSummary, type NetworkStackInfo } from '../../bridge/index.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { withApplyLock } from '../lock.js';
import { openInstance } from '../record/instance.js';

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UserError(`${what} must run as root (it reads cloud-init's cache and changes network configuration)`, 4);
  }
}

export interface Session {
  bridge: Bridge;
  summary: InstanceSummary;
  /** The renderer and activator cloud-init reported (what chooses our NetworkStack). */
  stack: NetworkStackInfo;
}

export async function withSession<T>(fn: (s: Session) => Promise<T>): Promise<T> {
  const bridge = await startBridge({ log });
  try {
    const { summary, stack } = await openInstance(bridge);
    return await fn({ bridge, summary, stack });
  } finally {
    await bridge.close();
  }
}

/**
 * Run `fn` holding the apply lock that the worker and the daemon also take, so a manual apply or
 * refresh never interleaves with event handling; a hook that found the lock taken meanwhile queued
 * its event and started no worker, so one is started for it afterwards.
 */
export async function withCommandLock<T>(fn: () => Promise<T>, timeoutMs = 300_000): Promise<T> {
  return withApplyLock(fn, { timeoutMs, onPending: async () => (await import('../hook.js')).ensureWorker() });
}
