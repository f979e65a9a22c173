/**
 * Lab-side helpers of the reliability suite, written against a structural view of the lab API
 * (scripts/lab/index.ts); tests pass `lab` in.
 */
import { collect, isWorker, type Runner, type Snapshot } from './collect.js';
import { compareState, type CompareOptions, type ExpectedNic } from './state.js';

export interface LabNic {
  ifname: string;
  mac: string;
  deviceNumber: number;
  ips: string[];
  cidr: string;
  gateway: string;
  visibleAt?: number;
  inMetadata: boolean;
}

export interface LabLike {
  exec(argv: string[], opts: { name?: string; cleanEnv?: boolean; env?: Record<string, string>; timeoutMs?: number; input?: string }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  status(opts: { name?: string }): Promise<{ nics: LabNic[] }>;
  udevEvents(opts: { name?: string }): Promise<{ source: string; action: string; ifname?: string; subsystem?: string; seqnum?: number }[]>;
}

export const PATH_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

export function runner(lab: LabLike, name: string, timeoutMs = 120_000): Runner {
  return (argv) => lab.exec(argv, { name, cleanEnv: true, env: PATH_ENV, timeoutMs });
}

export const snapshot = (lab: LabLike, name: string, hashFiles: string[] = []): Promise<Snapshot> => collect(runner(lab, name), hashFiles);

/** The NICs metadata lists now and the instance has (lab truth), as the comparator wants them. */
export async function expectedFromLab(lab: LabLike, name: string): Promise<ExpectedNic[]> {
  const st = await lab.status({ name });
  return st.nics
    .filter((n) => n.inMetadata)
    .map((n) => ({
      ifname: n.ifname,
      mac: n.mac,
      deviceNumber: n.deviceNumber,
      ips: [...n.ips],
      prefixlen: Number(n.cidr.split('/')[1]),
      cidr: n.cidr,
      gateway: n.gateway,
    }))
    .sort((a, b) => a.deviceNumber - b.deviceNumber);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Drained {
  snap: Snapshot;
  waitedMs: number;
}

/**
 * Waits until udev has run every queued event (udevadm settle), no event file is queued, the
 * apply lock is free and no worker runs, twice in a row. Throws with what was still busy.
 */
export async function waitDrained(lab: LabLike, name: string, timeoutMs = 180_000): Promise<Drained> {
  const t0 = Date.now();
  let quiet = 0;
  let last = '';
  for (;;) {
    await lab.exec(['udevadm', 'settle', '--timeout=30'], { name, cleanEnv: true, env: PATH_ENV, timeoutMs: 60_000 });
    const snap = await snapshot(lab, name);
    const queued = snap.queue.filter((q) => q.endsWith('.json') && !q.startsWith('.'));
    const workers = snap.procs.filter(isWorker);
    last = `queued ${queued.length}, lock ${snap.lockHeld ? 'held' : 'free'}, workers ${workers.map((w) => w.pid).join(',') || 'none'}`;
    if (!queued.length && !snap.lockHeld && !workers.length) {
      if (++quiet >= 2) return { snap, waitedMs: Date.now() - t0 };
    } else quiet = 0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`not drained after ${timeoutMs} ms: ${last}`);
    await sleep(quiet ? 400 : 250);
  }
}

export interface Converged extends Drained {
  expected: ExpectedNic[];
  diffs: string[];
}

/** Drained, then compared with metadata; a mismatch is looked at once more after a short settle. */
export async function converge(lab: LabLike, name: string, opts: CompareOptions & { timeoutMs?: number } = {}): Promise<Converged> {
  let d = await waitDrained(lab, name, opts.timeoutMs);
  let expected = await expectedFromLab(lab, name);
  let diffs = compareState(expected, d.snap, opts);
  if (diffs.length) {
    await sleep(2000);
    d = await waitDrained(lab, name, opts.timeoutMs);
    expected = await expectedFromLab(lab, name);
    diffs = compareState(expected, d.snap, opts);
  }
  return { ...d, expected, diffs };
}

/** Lines of /var/log/cloud-hotplug.log (worker output and one JSON record per handled event). */
export async function logLines(lab: LabLike, name: string): Promise<string[]> {
  const r = await lab.exec(['cat', '/var/log/cloud-hotplug.log'], { name, cleanEnv: true, env: PATH_ENV });
  return r.exitCode === 0 ? r.stdout.split('\n').filter(Boolean) : [];
}

export interface EventRecordLine {
  action: string;
  iface: string;
  mac?: string;
  result: string;
  reason?: string;
  time: string;
  /** From the kernel event to the record. */
  duration_ms?: number;
}

export function eventRecords(lines: string[]): EventRecordLine[] {
  const out: EventRecordLine[] = [];
  for (const l of lines) {
    if (!l.startsWith('{')) continue;
    try {
      const v = JSON.parse(l) as EventRecordLine;
      if (v && typeof v.result === 'string') out.push(v);
    } catch {
      /* not a record */
    }
  }
  return out;
}

/**
 * Kernel events udev delivered for `ifnames` (add/remove, after its rules ran) that the hook did
 * not log as queued or rejected: events lost between the kernel and our queue.
 */
export async function unhookedEvents(lab: LabLike, name: string, ifnames: (n: string) => boolean): Promise<{ delivered: number; hooked: number; missing: string[] }> {
  const ev = (await lab.udevEvents({ name })).filter((e) => e.source === 'udev' && e.subsystem === 'net' && (e.action === 'add' || e.action === 'remove') && e.ifname && ifnames(e.ifname));
  const lines = await logLines(lab, name);
  const hooked = new Map<string, number>();
  for (const l of lines) {
    const m = / hook queued action=(\S+) iface=(\S+) /.exec(l);
    if (m) hooked.set(`${m[1]} ${m[2]}`, (hooked.get(`${m[1]} ${m[2]}`) ?? 0) + 1);
  }
  const want = new Map<string, number>();
  for (const e of ev) want.set(`${e.action} ${e.ifname}`, (want.get(`${e.action} ${e.ifname}`) ?? 0) + 1);
  const missing: string[] = [];
  for (const [k, n] of want) {
    const h = hooked.get(k) ?? 0;
    if (h < n) missing.push(`${k}: ${n} delivered, ${h} queued`);
  }
  return { delivered: ev.length, hooked: [...hooked.values()].reduce((a, b) => a + b, 0), missing };
}

/** Deterministic PRNG (mulberry32) so a storm can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A reliability lab's name: $REL_LAB_PREFIX, `base`, then $REL_LAB_SUFFIX (so two checkouts can
 * run the suite side by side without taking each other's labs down).
 */
export function relLab(base: string): string {
  const s = process.env.REL_LAB_SUFFIX ?? '';
  if (!/^[a-z0-9-]{0,12}$/.test(s)) throw new Error('REL_LAB_SUFFIX: up to 12 of [a-z0-9-]');
  const p = process.env.REL_LAB_PREFIX ?? '';
  if (!/^([a-z0-9][a-z0-9-]{0,5})?$/.test(p)) throw new Error('REL_LAB_PREFIX: up to 6 of [a-z0-9-], starting with a letter or digit');
  return p + base + s;
}
