/**
 * Commands as jobs of the running daemon (`apply`, `refresh-metadata`, `wait`): submit, print the
 * job id at once (--async) or stream its progress on stderr and print its result as the one-shot
 * command would, exiting with the job's status. Also the printers both paths share.
 */
import YAML from 'yaml';
import { printJson } from './common.js';
import { connectDaemon, type DaemonConn, type Msg } from '../daemon/client.js';
import type { JobRecord } from '../daemon/job-store.js';
import { UserError } from '../util/errors.js';

/** What `hotplug apply` prints (one-shot or from a job's result). */
export function printApply(r: Record<string, any>, json: boolean, dryRun: boolean): void {
  if (json) {
    const { interfaces: _i, ...rest } = r;
    printJson(rest);
    return;
  }
  if (dryRun) {
    process.stdout.write('# network config (would apply)\n' + YAML.stringify(r.network_config));
    for (const f of r.files ?? []) {
      process.stdout.write(`# ${f.changed ? 'would write' : 'unchanged'}: ${f.path}\n`);
      if (f.changed) process.stdout.write(String(f.content).replace(/^/gm, '  ') + '\n');
    }
    process.stdout.write('# policy routing (would run)\n');
    for (const l of r.routes ?? []) process.stdout.write(`  ${l}\n`);
    return;
  }
  process.stdout.write(`applied: ${(r.interfaces as string[]).join(' ')} (${r.duration_ms} ms${r.refreshed ? ', refreshed' : ''})\n`);
}

/** What `hotplug refresh-metadata` prints. */
export function printRefresh(r: Record<string, any>, json: boolean): void {
  if (json) printJson({ summary: r.summary, network_config: r.network_config, duration_ms: r.duration_ms });
  else process.stdout.write(`refreshed ${r.summary.datasource} ${r.summary.instance_id}: ${r.summary.macs.length} interface(s) in metadata\n`);
}

function expectOk(m: Msg, what: string): Msg {
  if (m.ok !== true) throw new UserError(`daemon refused ${what}: ${String(m.error ?? 'no reason given')}`);
  return m;
}

/** Wait for a job on `conn`, progress on stderr; prints the result; returns the exit status. */
export async function waitJob(conn: DaemonConn, id: string, opts: { json?: boolean; quiet?: boolean }): Promise<number> {
  const m = expectOk(
    await conn.ask({ op: 'wait', id }, (p) => {
      if (p.type === 'job_progress' && !opts.quiet) process.stderr.write(`hotplug: job ${id}: ${String(p.step)}\n`);
    }),
    `wait ${id}`,
  );
  return finish(m.job as JobRecord, opts.json === true);
}

/** Print a finished job's result (or error); its exit status. */
export function finish(job: JobRecord, json: boolean): number {
  if (job.state !== 'done' && job.state !== 'failed') throw new UserError(`job ${job.id} is still ${job.state}`);
  if (job.state === 'failed') {
    if (json) printJson({ job: job.id, state: job.state, error: job.error });
    process.stderr.write(`hotplug: job ${job.id} failed: ${job.error ?? 'no reason recorded'}\n`);
    return 1;
  }
  const r = job.result ?? {};
  if (job.kind === 'apply') printApply(r, json, job.params.dryRun === true);
  else printRefresh(r, json);
  return 0;
}

/**
 * Submit to the running daemon; null when none runs (the caller works one-shot). --async prints
 * the job id (or {id,…} with --json) and returns 0.
 */
export async function viaDaemon(kind: 'apply' | 'refresh', params: Record<string, boolean>, opts: { async?: boolean; json?: boolean }): Promise<number | null> {
  const conn = await connectDaemon();
  if (!conn) {
    if (opts.async) throw new UserError('--async needs the daemon, and none is running (start it with `hotplug daemon`)');
    return null;
  }
  try {
    const m = expectOk(await conn.ask({ op: 'submit', kind, ...params }), `the ${kind} job`);
    const job = m.job as JobRecord;
    if (opts.async) {
      if (opts.json) printJson({ id: job.id, kind: job.kind, state: job.state, submitted: job.submitted });
      else process.stdout.write(`${job.id}\n`);
      return 0;
    }
    if (process.env.HOTPLUG_EVENT) {
      // A {run} policy command of the daemon: waiting would wait for the job it is part of.
      process.stderr.write(`hotplug: job ${job.id} submitted to the daemon; not waiting inside an event policy command (it runs after the current job)\n`);
      return 0;
    }
    process.stderr.write(`hotplug: job ${job.id} submitted to the daemon\n`);
    return await waitJob(conn, job.id, { json: opts.json });
  } finally {
    conn.close();
  }
}
