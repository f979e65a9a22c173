/**
 * One lab's mutex, across processes (an O_EXCL lock file holding "pid starttime", taken over
 * when its owner is dead) and within one process (a promise chain, so parallel API calls queue).
 */
import { open, readFile, unlink, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isAlive, procStartTime } from './proc.js';
import { sleep } from './run.js';
import { UserError } from '../../src/util/errors.js';

const chains = new Map<string, Promise<unknown>>();

async function acquireFile(path: string, timeoutMs: number): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const me = `${process.pid} ${procStartTime(process.pid) ?? 0}\n`;
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(me);
      await fh.close();
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let owner = '';
    try {
      owner = await readFile(path, 'utf8');
    } catch {
      continue; // released meanwhile
    }
    const [pid, st] = owner.trim().split(' ').map(Number);
    if (!owner.trim() || !isAlive({ pid: pid ?? 0, startTime: st ?? 0 })) {
      // stale (owner died): remove it only if it still holds the same content
      try {
        if ((await readFile(path, 'utf8')) === owner) await unlink(path);
      } catch {
        /* raced */
      }
      continue;
    }
    if (Date.now() >= end) return false;
    await sleep(30 + Math.random() * 40);
  }
}

export interface LockOptions {
  timeoutMs?: number;
  /** Go on without the lock when it cannot be had in time (for `down`). */
  force?: boolean;
}

export async function withLock<T>(path: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const prev = chains.get(path) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const chained = prev.then(() => mine);
  chains.set(path, chained);
  await prev.catch(() => {});
  let held = false;
  try {
    held = await acquireFile(path, opts.timeoutMs ?? 120_000);
    if (!held && !opts.force) {
      throw new UserError(`lab is busy: another process holds ${path}`);
    }
    return await fn();
  } finally {
    if (held) await unlink(path).catch(() => {});
    release();
    if (chains.get(path) === chained) chains.delete(path);
  }
}
