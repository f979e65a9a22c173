/**
 * The apply lock: one worker at a time, released by the kernel when its holder dies (even kill -9),
 * so there are no stale-lock heuristics.
 *
 * Node has no flock(2), so we open the lock file ourselves and let util-linux flock(1) lock OUR
 * open file description: the fd is passed to the child as its fd 3 and `flock 3` locks it. flock(2)
 * locks belong to the open file description, which parent and child share; when the child exits the
 * lock stays with node's fd, and goes when node closes it or dies. Node opens files O_CLOEXEC, so
 * other children we spawn later do not inherit (and cannot prolong) the lock.
 */
import { open, mkdir, readFile, appendFile, type FileHandle } from 'node:fs/promises';
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { spawn } from 'node:child_process';
import { paths } from './paths.js';
import { UserError } from './util/errors.js';

/** flock's exit status when the lock is busy (-n) or the wait timed out (-w); see -E. */
const CONFLICT = 75;

export interface Lock {
  readonly file: string;
  release(): Promise<void>;
}

export class LockTimeoutError extends UserError {
  constructor(readonly file: string, readonly timeoutMs: number) {
    super(`another cloud-hotplug run holds ${file} (waited ${timeoutMs} ms)`, CONFLICT);
    this.name = 'LockTimeoutError';
  }
}

async function openLockFile(file: string): Promise<FileHandle> {
  await mkdir(dirname(file), { recursive: true, mode: 0o755 });
  // O_NOFOLLOW: a planted symlink must not make root create or lock some other file.
  return open(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
}

/**
 * Runs flock(1) on fd 3 = our open file description. Resolves true if locked, false on conflict.
 * node:child_process rather than execa: execa's types refuse a raw fd at stdio[3]. argv, no shell.
 */
function flockFd(fh: FileHandle, args: string[]): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', [...args, '-E', String(CONFLICT), '3'], { stdio: ['ignore', 'ignore', 'pipe', fh.fd] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(true);
      else if (code === CONFLICT) resolve(false);
      else reject(new Error(`flock failed (${code ?? signal}): ${stderr.trim()}`));
    });
  });
}

/** What holding() needs of the locked open file: a FileHandle of ours, or an fd handed to us. */
interface LockedFile {
  writePid(): Promise<void>;
  close(): Promise<void>;
}

function fromHandle(fh: FileHandle): LockedFile {
  return {
    async writePid() {
      await fh.truncate(0);
      await fh.write(`${process.pid}\n`, 0);
    },
    close: () => fh.close(),
  };
}

async function holding(lf: LockedFile, file: string, writePid: boolean, how = ''): Promise<Lock> {
  // Informational only (for `status`); the lock itself is the truth.
  if (writePid) await lf.writePid();
  let released = false;
  const t0 = Date.now();
  await audit(file, `lock acquired t=${t0}${how}`);
  return {
    file,
    async release() {
      if (released) return;
      released = true;
      // Logged while still held: the logged intervals of two holders can never overlap.
      await audit(file, `lock released t=${Date.now()} held_ms=${Date.now() - t0}`);
      await lf.close(); // closing the last fd of the description drops the lock
    },
  };
}

/** O_CLOEXEC as /proc/PID/fdinfo prints the flags (octal). */
const FDINFO_CLOEXEC = 0o2000000;

/**
 * Why an fd handed to us cannot serve as the apply lock ('' when it can): it must be `file` itself
 * (same inode, not a symlink), its open file description must hold an exclusive flock (the kernel
 * lists the locks of a description in /proc/self/fdinfo/FD, so another description's lock does not
 * count), and it must be close-on-exec: a child we spawn must not carry the lock away (dhclient,
 * started under ifup, lives on). Node marks the fds it inherits close-on-exec; this checks it.
 */
export function handedLockProblem(fd: number, file: string = paths.lockFile): string {
  try {
    const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    const st = fstatSync(fd);
    const want = lstatSync(file);
    if (want.isSymbolicLink() || !st.isFile() || st.dev !== want.dev || st.ino !== want.ino) return `fd ${fd} is not ${file}`;
    const flags = /^flags:\s+([0-7]+)$/m.exec(info);
    if (!flags || (Number.parseInt(flags[1]!, 8) & FDINFO_CLOEXEC) === 0) return `fd ${fd} is not close-on-exec`;
    if (!/^lock:\s+\d+:\s+FLOCK\s+ADVISORY\s+WRITE\s/m.test(info)) return `fd ${fd} holds no exclusive flock`;
    return '';
  } catch (e) {
    return `fd ${fd}: ${(e as Error).message}`;
  }
}

/**
 * The apply lock the udev program took for us and handed over as an inherited fd (see
 * bin/hotplug-udev-hook): so a NIC storm starts one worker, which starts Python without first
 * running flock. Null when the fd does not pass handedLockProblem(); the fd is then closed (dropping
 * whatever it held) and the caller takes the lock the usual way.
 */
export async function adoptHandedLock(fd: number, file: string = paths.lockFile): Promise<Lock | null> {
  const problem = handedLockProblem(fd, file);
  if (problem) {
    try {
      closeSync(fd);
    } catch {
      /* not open */
    }
    await audit(file, `handed lock refused: ${problem}`);
    return null;
  }
  const lf: LockedFile = {
    async writePid() {
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
    },
    async close() {
      closeSync(fd);
    },
  };
  return holding(lf, file, true, ' from=udev-hook');
}

/** Who held the apply lock when (one line each way in our log; never fails the caller). */
async function audit(file: string, what: string): Promise<void> {
  if (file !== paths.lockFile) return;
  const cmd = process.argv.slice(2).find((a) => !a.startsWith('-')) ?? '?';
  await appendFile(paths.logFile, `hotplug[${process.pid}] info: ${what} cmd=${cmd}\n`, { mode: 0o640 }).catch(() => {});
}

/** Waits up to timeoutMs for the lock; throws LockTimeoutError when it stays busy. */
export async function acquireLock(opts: { timeoutMs: number; file?: string }): Promise<Lock> {
  return lock(opts.file ?? paths.lockFile, opts.timeoutMs, true);
}

async function lock(file: string, timeoutMs: number, writePid: boolean): Promise<Lock> {
  const fh = await openLockFile(file);
  try {
    // flock -w takes seconds (fractions allowed); a zero wait is -n ("-w 0" would never time out).
    const ms = Math.ceil(timeoutMs);
    const ok = await flockFd(fh, ms > 0 ? ['-x', '-w', (ms / 1000).toFixed(3)] : ['-x', '-n']);
    if (!ok) throw new LockTimeoutError(file, timeoutMs);
    return await holding(fromHandle(fh), file, writePid);
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/**
 * How long a "try" waits out someone who merely looks: the udev program asks whether a lock is held
 * with a shared flock that lasts a few milliseconds (bin/hotplug-udev-hook held()), which an
 * exclusive non-blocking attempt would take for a holder, leaving a queued event to nobody.
 */
export const PROBE_GRACE_MS = 250;

/** The lock, or null if someone else holds it (after PROBE_GRACE_MS, or graceMs). */
export async function tryLock(file: string = paths.lockFile, graceMs: number = PROBE_GRACE_MS): Promise<Lock | null> {
  return tryLockInternal(file, true, graceMs);
}

async function tryLockInternal(file: string, writePid: boolean, graceMs: number): Promise<Lock | null> {
  try {
    return await lock(file, graceMs, writePid);
  } catch (e) {
    if (e instanceof LockTimeoutError) return null;
    throw e;
  }
}

/** For `status`: is the lock held right now, and by which pid (as last written; informational). */
export async function lockStatus(file: string = paths.lockFile): Promise<{ held: boolean; pid?: number }> {
  let pid: number | undefined;
  try {
    const n = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    if (Number.isSafeInteger(n) && n > 0) pid = n;
  } catch {
    return { held: false };
  }
  const probe = await tryLockInternal(file, false, 0); // must not overwrite the pid
  if (!probe) return { held: true, pid };
  await probe.release();
  return { held: false };
}

/**
 * Release, then look at the queue. A hook that found the lock held enqueued BEFORE looking, so an
 * event is either seen here or its hook found the lock free and started a worker: whoever releases
 * the apply lock must call this instead of release(). `onPending` sees to what is queued (the
 * daemon schedules a drain, a one-shot command starts a worker, the worker tries the lock again).
 */
export async function releaseThenRecheck<T>(lock: Lock, onPending: (queued: number) => T | Promise<T>): Promise<T | undefined> {
  await lock.release();
  const { pendingCount } = await import('./events/queue.js');
  const queued = await pendingCount().catch(() => 0);
  return queued > 0 ? onPending(queued) : undefined;
}

/** Run `fn` holding the apply lock (waiting up to timeoutMs for it), then releaseThenRecheck(). */
export async function withApplyLock<T>(fn: () => Promise<T>, opts: { timeoutMs: number; onPending: (queued: number) => unknown }): Promise<T> {
  const lock = await acquireLock({ timeoutMs: opts.timeoutMs });
  try {
    return await fn();
  } finally {
    await releaseThenRecheck(lock, opts.onPending);
  }
}
