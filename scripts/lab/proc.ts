/**
 * Processes by PID: identity (PID + start time, so a reused PID is never killed),
 * namespace membership, detached daemons with logs, and killing.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, readlinkSync, readdirSync, statSync } from 'node:fs';
import { sleep } from './run.js';

export interface ProcRef {
  pid: number;
  /** /proc/<pid>/stat field 22 (clock ticks since boot): tells a PID's reuse apart. */
  startTime: number;
  /** What it is, for humans (status output). */
  what?: string;
}

function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = s.lastIndexOf(')');
    // fields after "(comm)": index 0 = state (field 3)
    return s.slice(close + 2).split(' ');
  } catch {
    return null;
  }
}

export function procStartTime(pid: number): number | null {
  const f = statFields(pid);
  return f ? Number(f[19]) : null;
}

/** Alive = exists, same start time, not a zombie. */
export function isAlive(ref: ProcRef | undefined | null): boolean {
  if (!ref || !Number.isInteger(ref.pid) || ref.pid <= 1) return false;
  const f = statFields(ref.pid);
  if (!f) return false;
  if (f[0] === 'Z' || f[0] === 'X') return false;
  return Number(f[19]) === ref.startTime;
}

export function refOf(pid: number, what?: string): ProcRef {
  const st = procStartTime(pid);
  if (st === null) throw new Error(`process ${pid} (${what ?? '?'}) is gone`);
  return { pid, startTime: st, what };
}

/** Inode of a namespace of a process, e.g. nsInode(pid, 'net'). */
export function nsInode(pid: number | 'self', kind: 'net' | 'mnt' | 'uts'): number | null {
  try {
    const l = readlinkSync(`/proc/${pid}/ns/${kind}`);
    const m = /\[(\d+)\]/.exec(l);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Inode of a bind-mounted namespace file such as /run/netns/NAME (null if absent). */
export function nsFileInode(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

/** Every PID (not this process) whose net or mount namespace is one of the given inodes. */
export function pidsInNamespaces(netInos: number[], mntInos: number[]): number[] {
  const nets = new Set(netInos.filter((x) => x));
  const mnts = new Set(mntInos.filter((x) => x));
  if (!nets.size && !mnts.size) return [];
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid || pid <= 1) continue;
    const n = nets.size ? nsInode(pid, 'net') : null;
    const m = mnts.size ? nsInode(pid, 'mnt') : null;
    if ((n !== null && nets.has(n)) || (m !== null && mnts.has(m))) out.push(pid);
  }
  return out;
}

/** SIGTERM the processes, wait up to graceMs, then SIGKILL what is left. Returns PIDs signalled. */
export async function killRefs(refs: ProcRef[], graceMs = 1500): Promise<number[]> {
  const live = refs.filter(isAlive);
  for (const r of live) {
    try {
      process.kill(r.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const end = Date.now() + graceMs;
  while (live.some(isAlive) && Date.now() < end) await sleep(25);
  for (const r of live.filter(isAlive)) {
    try {
      process.kill(r.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const end2 = Date.now() + 3000;
  while (live.some(isAlive) && Date.now() < end2) await sleep(25);
  return live.map((r) => r.pid);
}

export interface DaemonOptions {
  log: string;
  env?: Record<string, string>;
  cwd?: string;
}

/**
 * Start a long-lived process in its own session (setsid), stdout+stderr appended to `log`,
 * not waited for. Returns its identity at once (the caller waits for readiness).
 */
export function spawnDaemon(argv: string[], what: string, opts: DaemonOptions): ProcRef {
  const fd = openSync(opts.log, 'a', 0o644);
  try {
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: ['ignore', fd, fd],
      // Daemons of the instance start with a clean environment, as under systemd: the
      // caller's (e.g. NODE_EXTRA_CA_CERTS, which triples node's start-up) must not leak into
      // udevd and from there into every RUN program.
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/root', ...(opts.env ?? {}) },
      cwd: opts.cwd ?? '/',
    });
    child.on('error', () => {
      /* reported through the readiness check */
    });
    if (child.pid === undefined) throw new Error(`could not start ${what}: ${argv[0]}`);
    child.unref();
    const st = procStartTime(child.pid);
    return { pid: child.pid, startTime: st ?? 0, what };
  } finally {
    closeSync(fd);
  }
}

/** Comm name (e.g. "sleep") of a live PID, or null. */
export function procComm(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}
