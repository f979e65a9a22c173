/**
 * What the daemon does for a request on any listener (kick, status, jobs: submit, wait, list;
 * apply and refresh as a job waited for), the jobs' work (under the apply lock, on the daemon's one
 * job queue, shared with events), and a one-shot worker for events still queued when it leaves.
 */
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { pendingCount } from '../events/queue.js';
import { applyAll } from '../pipeline/apply-all.js';
import { refreshMetadata } from '../core/refresh.js';
import { paths } from '../paths.js';
import { log } from '../util/log.js';
import { oneLine, UserError } from '../util/errors.js';
import type { Reply, Send } from './listeners/session.js';
import type { Request } from './protocol.js';
import type { Daemon } from './daemon.js';
import type { JobRecord } from './job-store.js';

const CLI_JS = fileURLToPath(new URL('../cli.js', import.meta.url));

/** A job's work; `step` reports progress. Returns the job's result. */
export async function runJobWork(d: Daemon, job: JobRecord, step: (s: string) => void): Promise<Record<string, unknown>> {
  if (job.kind === 'refresh') {
    const r = await d.locked(() =>
      d.withBridge('refresh', async (b) => {
        step('refreshing metadata');
        const res = await refreshMetadata(b);
        await d.acceptSummary(b).catch(() => {});
        return res;
      }),
    );
    log('info', 'metadata refreshed', { job: job.id, datasource: r.summary.datasource, macs: r.summary.macs.length, duration_ms: r.durationMs });
    return { duration_ms: r.durationMs, summary: r.summary, network_config: r.networkConfig };
  }
  const dryRun = job.params.dryRun === true;
  const refresh = job.params.refresh !== false;
  const run = () =>
    d.withBridge('apply', async (b) => {
      const r = await applyAll(d.deps, b, { refresh, dryRun, onStep: step });
      if (!dryRun) await d.acceptSummary(b).catch(() => {});
      return r;
    });
  const r = await (dryRun ? run() : d.locked(run));
  return {
    dry_run: dryRun,
    refreshed: r.refreshed,
    duration_ms: r.durationMs,
    interfaces: r.view.interfaces.map((i) => i.name),
    network_config: r.view.network_config,
    files: r.files,
    routes: r.routeLines,
  };
}

/** Submit and wait; a failed job is an error reply. */
async function submitAndWait(d: Daemon, kind: 'apply' | 'refresh', params: JobRecord['params'], via: string): Promise<JobRecord> {
  const job = await d.jobStore.wait(d.submit(kind, params, via).id);
  if (job.state === 'failed') throw new UserError(job.error ?? `job ${job.id} failed`);
  return job;
}

export async function handleRequest(d: Daemon, req: Exclude<Request, { op: 'subscribe' }>, send: Send, via: string): Promise<Reply> {
  switch (req.op) {
    case 'ping':
      return { pid: process.pid };
    case 'kick':
      d.stats.kicks++;
      d.scheduleDrain();
      return { queued: await pendingCount() };
    case 'status':
      return { status: await d.status() };
    case 'submit':
      return { job: d.submit(req.kind, req.kind === 'apply' ? { refresh: req.refresh, dryRun: req.dryRun } : {}, via) };
    case 'wait':
      return { job: await d.jobStore.wait(req.id, (step) => send({ type: 'job_progress', id: req.id, time: new Date().toISOString(), step })) };
    case 'jobs':
      return { jobs: d.jobStore.list(req.limit) };
    case 'refresh': {
      const job = await submitAndWait(d, 'refresh', {}, via);
      const s = job.result?.summary as { macs: string[]; datasource: string; instance_id: string };
      return { job: job.id, result: { duration_ms: job.result?.duration_ms, macs: s.macs, datasource: s.datasource, instance_id: s.instance_id } };
    }
    case 'apply': {
      const job = await submitAndWait(d, 'apply', { refresh: req.refresh, dryRun: req.dryRun }, via);
      return { job: job.id, result: job.result };
    }
  }
}

/** A one-shot worker for what is still queued when the daemon leaves. */
export function startWorker(queued: number): void {
  try {
    mkdirSync(dirname(paths.logFile), { recursive: true });
    const fd = openSync(paths.logFile, 'a', 0o640);
    const child = spawn(process.execPath, [CLI_JS, 'worker'], { detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.unref();
    log('info', 'events still queued; started a worker for them', { queued, worker_pid: child.pid });
  } catch (e) {
    log('warn', 'events stay queued for the next worker or daemon', { queued, error: oneLine(e) });
  }
}
