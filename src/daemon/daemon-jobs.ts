/**
 * The daemon's jobs and URL sources as parts of it: submitting a job (persisted, then run on the
 * one job queue), resuming what a killed daemon left, and the URL sources wired to the queue and
 * the pipeline.
 */
import type { JobKind } from './protocol.js';
import type { JobRecord } from './job-store.js';
import type { Daemon } from './daemon.js';
import { runJobWork } from './requests.js';
import { UrlSource } from './url-source.js';
import { repairRouting } from '../pipeline/changes.js';
import { log, since } from '../util/log.js';
import { oneLine } from '../util/errors.js';

const now = () => new Date().toISOString();

export function submitJob(d: Daemon, kind: JobKind, params: JobRecord['params'], via: string, rerunOf?: string): JobRecord {
  const rec = d.jobStore.create(kind, params, via, rerunOf);
  const fail = (e: unknown) => d.jobStore.update(rec.id, { state: 'failed', finished: now(), error: oneLine(e) });
  d.jobs.schedule('request', `${kind}${params.dryRun ? ' (dry run)' : ''} job ${rec.id}`, () => runJob(d, rec), (e) => void fail(e));
  return rec;
}

async function runJob(d: Daemon, rec: JobRecord): Promise<void> {
  const t0 = performance.now();
  // Persisted as running before anything changes: a kill from here on is seen by the next daemon.
  await d.jobStore.update(rec.id, { state: 'running', started: now() });
  let patch: Partial<JobRecord>;
  try {
    const result = await runJobWork(d, rec, (step) => d.jobStore.step(rec.id, step));
    patch = { state: 'done', result };
  } catch (e) {
    patch = { state: 'failed', error: oneLine(e) };
  }
  await d.jobStore.update(rec.id, { ...patch, finished: now(), duration_ms: since(t0) });
  log(patch.state === 'done' ? 'info' : 'warn', `job ${patch.state}`, { job: rec.id, kind: rec.kind, via: rec.via, duration_ms: since(t0), error: patch.error });
  d.emit({ type: 'job', time: now(), id: rec.id, kind: rec.kind, state: patch.state!, duration_ms: since(t0), ...(patch.error ? { error: patch.error } : {}) });
}

/** Jobs an earlier daemon left unfinished: failed (job-store.ts), and run again whole (behind the queue drain). */
export async function resumeInterrupted(d: Daemon): Promise<void> {
  for (const old of await d.jobStore.load()) {
    if (old.params.dryRun) continue;
    const again = submitJob(d, old.kind, old.params, 'daemon (re-run)', old.id);
    log('warn', 'a job was interrupted by the death of the daemon; running it again', { job: old.id, rerun: again.id, kind: old.kind });
    await d.jobStore.update(old.id, { rerun_by: again.id, error: `${old.error}; run again as job ${again.id}` });
  }
}

/** The configured URL sources, their changes run as jobs through the pipeline. */
export function urlSourcesOf(d: Daemon): UrlSource[] {
  return d.cfg.daemon.url_sources.map(
    (c) =>
      new UrlSource(c, {
        schedule: (what, fn) => d.jobs.schedule('url', what, fn),
        stopping: () => d.state === 'stopping',
        policy: () => d.cfg.events.url_change,
        pollMetadata: async () => {
          await d.poller.pollOnce();
          return { ok: d.poller.stats.lastError === null, reason: d.poller.stats.lastError ?? 'metadata polled' };
        },
        reconcile: async () => {
          const r = await repairRouting(d.deps, (fn) => d.locked(fn));
          return { ok: !r.failed, routingChanges: r.changes, reason: `${r.changes} routing change(s), ${r.failed} failed` };
        },
        emit: (rec) => d.emit(rec),
      }),
  );
}
