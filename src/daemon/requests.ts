/**
 * What the daemon does for a socket request (kick, status, refresh, apply: the last two as jobs
 * under the apply lock), and for events still queued when it leaves (a one-shot worker).
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
import { oneLine } from '../util/errors.js';
import type { Reply } from './server.js';
import type { Request } from './protocol.js';
import type { Daemon } from './daemon.js';

const CLI_JS = fileURLToPath(new URL('../cli.js', import.meta.url));

export async function handleRequest(d: Daemon, req: Exclude<Request, { op: 'subscribe' }>): Promise<Reply> {
  switch (req.op) {
    case 'ping':
      return { pid: process.pid };
    case 'kick':
      d.stats.kicks++;
      d.scheduleDrain();
      return { queued: await pendingCount() };
    case 'status':
      return { status: await d.status() };
    case 'refresh': {
      const r = await d.jobs.request('refresh (socket)', () => d.locked(() => d.withBridge('refresh', (b) => refreshMetadata(b))));
      return { result: { duration_ms: r.durationMs, macs: r.summary.macs, datasource: r.summary.datasource, instance_id: r.summary.instance_id } };
    }
    case 'apply': {
      const run = () =>
        d.withBridge('apply', async (b) => {
          const r = await applyAll(d.deps, b, { refresh: req.refresh, dryRun: req.dryRun });
          if (!req.dryRun) await d.acceptSummary(b).catch(() => {});
          return r;
        });
      const r = await d.jobs.request(`apply (socket${req.dryRun ? ', dry run' : ''})`, () => (req.dryRun ? run() : d.locked(run)));
      return { result: { dry_run: req.dryRun, refreshed: r.refreshed, duration_ms: r.durationMs, network_config: r.view.network_config, files: r.files, routes: r.routeLines } };
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
