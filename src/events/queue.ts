/**
 * Durable event queue: one file per event under paths.queueDir (tmpfs /run, so it empties on reboot,
 * when a full reconcile runs anyway).
 *
 * File name: <boot-clock ms, 13 digits>-<seqnum or 0, 20 digits>-<id>.json, so lexical order = arrival
 * order; mode 0600 in a 0700 directory. Node writes a file atomically (temp + rename). The udev
 * program writes it in place (O_EXCL, one fork fewer than `mv` in a storm of hooks), so a reader may
 * see it before its last byte: a file whose text does not end with the newline every writer ends it
 * with is not written yet. While young it is skipped and not counted (its hook looks at the lock only
 * after the write, so the hand-off still holds); older than INCOMPLETE_GRACE_MS its writer died, and
 * it is quarantined like any unreadable file.
 *
 * Crash safety: nothing is deleted when read. The worker (holding the apply lock) calls take() to
 * snapshot what is queued, handles it, then ack()s exactly those ids. A worker killed with -9 before
 * ack leaves the files for the next one; events that arrive meanwhile are not in the snapshot and
 * survive the ack. Handling must therefore be idempotent (an event may be served twice).
 *
 * The udev program (bin/hotplug-udev-hook, sh) writes the same files the same way; this module is
 * how node code (the daemon's kernel watch, tests) queues and how the pipeline takes and acks.
 */
import { constants, type Stats } from 'node:fs';
import { mkdir, readdir, rename, unlink, lstat, open } from 'node:fs/promises';
import { join } from 'node:path';
import { paths } from '../paths.js';
import { writeFileAtomic } from '../util/atomic.js';
import { log } from '../util/log.js';
import { isOurTempName, sweepStaleTemps } from '../util/sweep.js';
import { bootOfEpoch } from '../util/boot-clock.js';
import { oneLine, UserError } from '../util/errors.js';
import { validateEvent, type HotplugEvent } from './event.js';

const NAME_RE = /^(\d{13})-(\d{20})-([A-Za-z0-9_-]{1,64})\.json$/;

/** How long a queue file without its final newline is taken for one being written. */
export const INCOMPLETE_GRACE_MS = 60_000;

/** The name's time is on the boot clock, as the udev program writes it, so names sort in arrival order whoever wrote them. */
export function queueFileName(ev: HotplugEvent): string {
  return `${String(bootOfEpoch(ev.time)).padStart(13, '0')}-${String(ev.seqnum ?? 0).padStart(20, '0')}-${ev.id}.json`;
}

/**
 * The queue directory must be a real directory (not a planted symlink that would send root's
 * writes elsewhere), owned by us and writable by nobody else.
 */
function checkDir(dir: string, st: Stats): void {
  if (st.isSymbolicLink()) throw new UserError(`refusing queue directory ${dir}: it is a symlink`);
  if (!st.isDirectory()) throw new UserError(`refusing queue directory ${dir}: not a directory`);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (st.uid !== uid) throw new UserError(`refusing queue directory ${dir}: owned by uid ${st.uid}, not ${uid}`);
  if (st.mode & 0o022) throw new UserError(`refusing queue directory ${dir}: writable by group or others (mode ${(st.mode & 0o777).toString(8)})`);
}

function serialize(ev: HotplugEvent): string {
  return JSON.stringify(validateEvent(ev)) + '\n';
}

export async function enqueue(ev: HotplugEvent, dir: string = paths.queueDir): Promise<string> {
  const data = serialize(ev);
  // Create it 0700 ourselves: writeFileAtomic would create a missing directory 0755.
  await mkdir(dir, { recursive: true, mode: 0o700 });
  checkDir(dir, await lstat(dir));
  const file = join(dir, queueFileName(ev));
  await writeFileAtomic(file, data, 0o600);
  return file;
}

async function names(dir: string): Promise<string[]> {
  try {
    checkDir(dir, await lstat(dir));
    return (await readdir(dir)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

async function quarantine(dir: string, name: string, why: string): Promise<void> {
  log('warn', 'quarantined unreadable queue file', { file: name, error: why });
  await rename(join(dir, name), join(dir, name + '.bad')).catch(() => {});
}

/**
 * All queued events in arrival order. A file that does not parse or validate (or whose name does
 * not match its content) is renamed to *.bad with a warning instead of failing the whole queue.
 * `seen`, for a caller that looks every few ms (the daemon gathering a storm): a queue file never
 * changes once renamed in, so each one is read and validated once; names gone are forgotten.
 */
export async function list(dir: string = paths.queueDir, seen?: Map<string, HotplugEvent>): Promise<HotplugEvent[]> {
  const out: HotplugEvent[] = [];
  let temps = false;
  const present = await names(dir);
  if (seen) {
    const here = new Set(present);
    for (const name of [...seen.keys()]) if (!here.has(name)) seen.delete(name);
  }
  for (const name of present) {
    if (name.startsWith('.')) {
      if (isOurTempName(name)) temps = true;
      continue;
    }
    if (!name.endsWith('.json')) continue; // *.bad and strangers
    const known = seen?.get(name);
    if (known) {
      out.push(known);
      continue;
    }
    let text: string;
    let mtimeMs: number;
    try {
      ({ text, mtimeMs } = await readRegular(join(dir, name)));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // acked concurrently
      if (code === 'ELOOP' || code === 'EISDIR' || code === 'ENOTREG' || code === 'EFBIG') {
        await quarantine(dir, name, code === 'ELOOP' ? 'it is a symlink' : code === 'EFBIG' ? 'too large for an event' : 'not a regular file');
        continue;
      }
      throw e;
    }
    if (!text.endsWith('\n')) {
      if (Date.now() - mtimeMs < INCOMPLETE_GRACE_MS) continue; // being written: a later look reads it
      await quarantine(dir, name, `incomplete for ${Math.round((Date.now() - mtimeMs) / 1000)} s: its writer stopped mid-write`);
      continue;
    }
    try {
      const m = NAME_RE.exec(name);
      if (!m) throw new Error('file name does not match <time>-<seqnum>-<id>.json');
      const ev = validateEvent(JSON.parse(text));
      if (ev.id !== m[3]) throw new Error(`file name id ${m[3]} != content id ${ev.id}`);
      out.push(ev);
      seen?.set(name, ev);
    } catch (e) {
      await quarantine(dir, name, oneLine(e));
    }
  }
  // Temp files of writers killed mid-write (a long-running daemon would otherwise keep them).
  if (temps) await sweepStaleTemps([{ dir }]);
  return out;
}

/** A queue file's text and mtime; never through a planted symlink, never a FIFO or device (would block or leak). */
async function readRegular(file: string): Promise<{ text: string; mtimeMs: number }> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw Object.assign(new Error(`${file}: not a regular file`), { code: st.isDirectory() ? 'EISDIR' : 'ENOTREG' });
    if (st.size > 64 * 1024) throw Object.assign(new Error(`${file}: ${st.size} bytes, too large for an event`), { code: 'EFBIG' });
    return { text: await fh.readFile('utf8'), mtimeMs: st.mtimeMs };
  } finally {
    await fh.close();
  }
}

/** Is this queue file still being written (no final newline yet, and young)? Unreadable files are not: list() deals with them. */
async function beingWritten(file: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = await fh.stat();
    if (!st.isFile() || Date.now() - st.mtimeMs >= INCOMPLETE_GRACE_MS) return false;
    if (st.size === 0) return true;
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, st.size - 1);
    return last[0] !== 0x0a;
  } catch {
    return false;
  } finally {
    await fh?.close();
  }
}

export interface Claim {
  events: HotplugEvent[];
  ids: string[];
}

/**
 * Snapshot of everything queued now, to be served by one refresh + apply and then ack()ed.
 * Deletes nothing: exclusivity comes from the apply lock, which the caller must hold.
 */
export async function take(dir: string = paths.queueDir): Promise<Claim> {
  const events = await list(dir);
  return { events, ids: events.map((e) => e.id) };
}

/** Deletes the given events after they were handled. Unknown ids are ignored. Returns how many were removed. */
export async function ack(ids: Iterable<string>, dir: string = paths.queueDir): Promise<number> {
  const want = new Set(ids);
  if (want.size === 0) return 0;
  let n = 0;
  for (const name of await names(dir)) {
    const m = NAME_RE.exec(name);
    if (!m || !want.has(m[3]!)) continue;
    try {
      await unlink(join(dir, name));
      n++;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return n;
}

/**
 * Number of queued event files, without parsing them, leaving out those still being written: a
 * worker's last look must not take one for work (its hook looks at the lock after the write), nor
 * may the daemon's drain loop spin on it (the write's inotify event schedules the next drain).
 */
export async function pendingCount(dir: string = paths.queueDir): Promise<number> {
  let n = 0;
  for (const name of (await names(dir)).filter((x) => NAME_RE.test(x))) if (!(await beingWritten(join(dir, name)))) n++;
  return n;
}
