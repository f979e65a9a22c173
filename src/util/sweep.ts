/**
 * Temp files our atomic writers leave behind when killed (-9, OOM) between creating the temp file
 * and renaming it: swept when a worker or the daemon starts.
 *
 * Only our own names are touched, in our own directories:
 *   .<name>.<12 hex>.tmp      src/util/atomic.ts (queue files through src/events/queue.ts)
 *   .<name>.<8 [a-z0-9_]>.tmp the bridge's _replace_file (tempfile.mkstemp, suffix .tmp)
 *   .<name>.<pid>.tmp         bin/hotplug-udev-hook ($Q/.NAME.PID.tmp)
 * and only regular files (never a symlink, directory or FIFO with such a name), older than
 * STALE_TEMP_MS, in a directory that is a real directory owned by us and not writable by group or
 * others (so nobody else can swap what we unlink). Each removal is logged with its path.
 */
import { lstat, readdir, realpath, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { paths } from '../paths.js';
import { log } from './log.js';
import { oneLine } from './errors.js';

/** A temp file this old belongs to a writer that died: no write of ours takes minutes. */
export const STALE_TEMP_MS = 10 * 60_000;

const TEMP_NAME_RE = /^\.[^/.][^/]{0,254}\.(?:[0-9a-f]{12}|[a-z0-9_]{8}|[0-9]{1,10})\.tmp$/;

/** Whether `name` is one of our atomic writers' temp-file names (see the header). */
export function isOurTempName(name: string): boolean {
  return TEMP_NAME_RE.test(name);
}

/**
 * Our directories: the runtime dir, its queue, the persistent state dir, and the directories the
 * bridge writes network-config.json and obj.pkl into. obj.pkl's directory is cloud-init's
 * /var/lib/cloud/instance, normally a symlink to instances/<id>: that one link is resolved, and
 * only when it points directly into cloud-init's instances/ directory.
 */
export function ourTempDirs(): { dir: string; resolveInstanceLink?: boolean }[] {
  const dirs = [paths.runDir, paths.queueDir, paths.stateDir, dirname(paths.networkConfigJson)];
  const out: { dir: string; resolveInstanceLink?: boolean }[] = [...new Set(dirs)].map((dir) => ({ dir }));
  const objDir = dirname(paths.objPkl);
  if (!dirs.includes(objDir)) out.push({ dir: objDir, resolveInstanceLink: true });
  return out;
}

/** The directory to sweep, or a reason to leave it alone. */
async function usableDir(dir: string, resolveInstanceLink: boolean): Promise<{ dir: string } | { skip: string }> {
  let st = await lstat(dir);
  let real = dir;
  if (st.isSymbolicLink()) {
    if (!resolveInstanceLink) return { skip: 'it is a symlink' };
    real = await realpath(dir);
    const instances = await realpath(join(dirname(dir), 'instances')).catch(() => undefined);
    if (!instances || dirname(real) !== instances) return { skip: `it is a symlink to ${real}, not into ${join(dirname(dir), 'instances')}` };
    st = await lstat(real);
  }
  if (!st.isDirectory()) return { skip: 'not a directory' };
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (st.uid !== uid) return { skip: `owned by uid ${st.uid}, not ${uid}` };
  if (st.mode & 0o022) return { skip: `writable by group or others (mode ${(st.mode & 0o777).toString(8)})` };
  return { dir: real };
}

export interface SweepOptions {
  maxAgeMs?: number;
  now?: number;
}

/** Remove stale temp files of ours in `dirs`. Returns the paths removed; never throws. */
export async function sweepStaleTemps(
  dirs: { dir: string; resolveInstanceLink?: boolean }[] = ourTempDirs(),
  opts: SweepOptions = {},
): Promise<string[]> {
  const maxAge = opts.maxAgeMs ?? STALE_TEMP_MS;
  const removed: string[] = [];
  const seen = new Set<string>();
  for (const { dir, resolveInstanceLink } of dirs) {
    let names: string[];
    let real: string;
    try {
      const u = await usableDir(dir, !!resolveInstanceLink);
      if ('skip' in u) {
        log('warn', 'not sweeping stale temp files', { dir, reason: u.skip });
        continue;
      }
      real = u.dir;
      if (seen.has(real)) continue;
      seen.add(real);
      names = await readdir(real);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log('warn', 'not sweeping stale temp files', { dir, reason: oneLine(e) });
      continue;
    }
    const now = opts.now ?? Date.now();
    for (const name of names) {
      if (!isOurTempName(name)) continue;
      const path = join(real, name);
      try {
        const st = await lstat(path);
        if (!st.isFile()) continue; // a symlink, directory, FIFO … with our name is not ours
        const age = now - st.mtimeMs;
        if (age < maxAge) continue; // a write in progress
        await unlink(path);
        removed.push(path);
        log('info', 'removed stale temp file', { path, age_s: Math.round(age / 1000) });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log('warn', 'could not remove stale temp file', { path, error: oneLine(e) });
      }
    }
  }
  return removed;
}
