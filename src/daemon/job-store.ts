/**
 * Jobs submitted to the daemon (`hotplug apply` / `refresh-metadata` through it): their records,
 * kept in memory for waiters and persisted one file per job in /run/cloud-hotplug/jobs (0600,
 * written atomically on every change, so a reader sees the old record or the new one).
 *
 * A daemon killed mid-job leaves the record `running` (or `queued`) with its pid; the next daemon
 * marks such a job failed ("interrupted") and submits it again (rerun_by / rerun_of), so what it
 * left half-done is completed by a whole run under the apply lock, never left as it was.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { paths } from '../paths.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { JOB_ID_RE, type JobKind } from './protocol.js';

export type JobState = 'queued' | 'running' | 'done' | 'failed';

export interface JobRecord {
  id: string;
  kind: JobKind;
  params: { refresh?: boolean; dryRun?: boolean };
  state: JobState;
  /** Who asked: socket, fifo, tcp, or the daemon itself (a re-run). */
  via: string;
  submitted: string;
  started: string | null;
  finished: string | null;
  duration_ms: number | null;
  daemon_pid: number;
  progress: { time: string; step: string }[];
  result?: Record<string, unknown>;
  error?: string;
  rerun_of?: string;
  rerun_by?: string;
}

export const jobsDir = (): string => join(paths.runDir, 'jobs');
const KEEP = 100;
const terminal = (s: JobState) => s === 'done' || s === 'failed';

function parseRecord(text: string): JobRecord | null {
  try {
    const v = JSON.parse(text) as Partial<JobRecord>;
    if (typeof v.id !== 'string' || !JOB_ID_RE.test(v.id) || (v.kind !== 'apply' && v.kind !== 'refresh')) return null;
    if (!['queued', 'running', 'done', 'failed'].includes(String(v.state)) || typeof v.submitted !== 'string') return null;
    return { progress: [], params: {}, started: null, finished: null, duration_ms: null, daemon_pid: 0, via: 'socket', ...v } as JobRecord;
  } catch {
    return null;
  }
}

/** Job records on disk, oldest first (for `hotplug jobs` / `wait` without a daemon). */
export function readJobsFromDisk(): JobRecord[] {
  let names: string[];
  try {
    names = readdirSync(jobsDir()).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
  } catch {
    return [];
  }
  const out: JobRecord[] = [];
  for (const n of names) {
    try {
      const r = parseRecord(readFileSync(join(jobsDir(), n), 'utf8'));
      if (r) out.push(r);
    } catch {
      /* removed meanwhile */
    }
  }
  return out.sort((a, b) => a.submitted.localeCompare(b.submitted) || a.id.localeCompare(b.id));
}

export function newJobId(): string {
  return `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

type Listener = (rec: JobRecord, step?: string) => void;

export class JobStore {
  private readonly jobs = new Map<string, JobRecord>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly writes = new Map<string, Promise<void>>();

  constructor(private readonly pid = process.pid) {}

  /**
   * Read what an earlier daemon left: its unfinished jobs are marked failed and returned (to be
   * submitted again); everything is kept for `hotplug jobs`.
   */
  async load(): Promise<JobRecord[]> {
    await mkdir(jobsDir(), { recursive: true, mode: 0o700 });
    const interrupted: JobRecord[] = [];
    for (const n of await readdir(jobsDir())) {
      if (!n.endsWith('.json') || n.startsWith('.')) continue;
      const r = parseRecord(await readFile(join(jobsDir(), n), 'utf8').catch(() => ''));
      if (!r) continue;
      this.jobs.set(r.id, r);
      if (!terminal(r.state) && r.daemon_pid !== this.pid) {
        r.error = `interrupted: daemon pid ${r.daemon_pid} stopped while the job was ${r.state}`;
        r.state = 'failed';
        r.finished = new Date().toISOString();
        interrupted.push(r);
        await this.persist(r);
      }
    }
    await this.prune();
    return interrupted;
  }

  create(kind: JobKind, params: JobRecord['params'], via: string, rerunOf?: string): JobRecord {
    const rec: JobRecord = {
      id: newJobId(),
      kind,
      params,
      state: 'queued',
      via,
      submitted: new Date().toISOString(),
      started: null,
      finished: null,
      duration_ms: null,
      daemon_pid: this.pid,
      progress: [],
      ...(rerunOf ? { rerun_of: rerunOf } : {}),
    };
    this.jobs.set(rec.id, rec);
    void this.persist(rec);
    return rec;
  }

  get(id: string): JobRecord | undefined {
    return this.jobs.get(id);
  }

  /** The newest `limit` jobs, oldest first. */
  list(limit = 20): JobRecord[] {
    return [...this.jobs.values()].sort((a, b) => a.submitted.localeCompare(b.submitted) || a.id.localeCompare(b.id)).slice(-limit);
  }

  get unfinished(): number {
    return [...this.jobs.values()].filter((j) => !terminal(j.state)).length;
  }

  update(id: string, patch: Partial<JobRecord>): Promise<void> {
    const rec = this.jobs.get(id);
    if (!rec) return Promise.resolve();
    Object.assign(rec, patch);
    this.notify(rec);
    const p = this.persist(rec);
    if (terminal(rec.state)) void p.then(() => this.prune());
    return p;
  }

  step(id: string, step: string): void {
    const rec = this.jobs.get(id);
    if (!rec) return;
    rec.progress.push({ time: new Date().toISOString(), step });
    if (rec.progress.length > 20) rec.progress.splice(0, rec.progress.length - 20);
    this.notify(rec, step);
    void this.persist(rec);
  }

  /**
   * Resolves when the job is done or failed; `onStep` hears its progress, first the steps taken
   * before this wait began (a client attaches after submitting: the job may be well under way).
   */
  wait(id: string, onStep?: (step: string) => void): Promise<JobRecord> {
    const rec = this.jobs.get(id);
    if (!rec) return Promise.reject(new Error(`no job ${id} (hotplug jobs lists the recent ones)`));
    for (const p of rec.progress) onStep?.(p.step);
    if (terminal(rec.state)) return Promise.resolve(rec);
    return new Promise((resolve) => {
      const set = this.listeners.get(id) ?? new Set<Listener>();
      this.listeners.set(id, set);
      const l: Listener = (r, step) => {
        if (step !== undefined) onStep?.(step);
        if (terminal(r.state)) {
          set.delete(l);
          if (!set.size) this.listeners.delete(id);
          resolve(r);
        }
      };
      set.add(l);
    });
  }

  /** Every write of one job after the one before it (two renames must not land out of order). */
  private persist(rec: JobRecord): Promise<void> {
    const snapshot = JSON.parse(JSON.stringify(rec)) as JobRecord;
    const prev = this.writes.get(rec.id) ?? Promise.resolve();
    const next = prev.then(() => writeJsonAtomic(join(jobsDir(), `${rec.id}.json`), snapshot, 0o600)).catch(() => {});
    this.writes.set(rec.id, next);
    void next.then(() => {
      if (this.writes.get(rec.id) === next) this.writes.delete(rec.id);
    });
    return next;
  }

  private notify(rec: JobRecord, step?: string): void {
    for (const l of [...(this.listeners.get(rec.id) ?? [])]) l(rec, step);
  }

  /** Keep the newest KEEP finished jobs. */
  private async prune(): Promise<void> {
    const done = this.list(Number.MAX_SAFE_INTEGER).filter((j) => terminal(j.state));
    for (const j of done.slice(0, Math.max(0, done.length - KEEP))) {
      this.jobs.delete(j.id);
      await unlink(join(jobsDir(), `${j.id}.json`)).catch(() => {});
    }
  }
}
