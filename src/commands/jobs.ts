/** `hotplug jobs` and `hotplug wait ID`: the daemon's recent jobs, and waiting for one. */
import type { Command } from 'commander';
import { action, printJson } from './common.js';
import { connectDaemon } from '../daemon/client.js';
import { readJobsFromDisk, type JobRecord } from '../daemon/job-store.js';
import { JOB_ID_RE } from '../daemon/protocol.js';
import { UserError } from '../util/errors.js';
import { finish, waitJob } from './job-client.js';

const dur = (ms: number | null) => (ms === null ? '-' : ms < 10_000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`);

/** Recent jobs from the daemon, else from its records on disk. */
async function recentJobs(limit: number): Promise<{ jobs: JobRecord[]; from: 'daemon' | 'disk' }> {
  const conn = await connectDaemon();
  if (conn) {
    try {
      const m = await conn.ask({ op: 'jobs', limit });
      if (m.ok === true && Array.isArray(m.jobs)) return { jobs: m.jobs as JobRecord[], from: 'daemon' };
    } finally {
      conn.close();
    }
  }
  return { jobs: readJobsFromDisk().slice(-limit), from: 'disk' };
}

export function register(program: Command): void {
  program
    .command('jobs')
    .description('List the recent jobs of the daemon (apply and refresh-metadata submitted to it): id, kind, state, duration. Without a running daemon, from its records in /run/cloud-hotplug/jobs.')
    .option('--limit <n>', 'how many (newest)', '20')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { limit: string; json?: boolean }) => {
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new UserError('--limit must be an integer between 1 and 200', 2);
        const { jobs, from } = await recentJobs(limit);
        if (opts.json) return printJson({ from, jobs });
        if (!jobs.length) return void process.stdout.write('no jobs\n');
        const rows = jobs.map((j) => [j.id, j.kind + (j.params.dryRun ? ' (dry run)' : ''), j.state, dur(j.duration_ms), j.submitted, j.error ?? '']);
        const head = ['ID', 'KIND', 'STATE', 'DURATION', 'SUBMITTED', 'ERROR'];
        const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
        for (const r of [head, ...rows]) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd() + '\n');
      }),
    );
  program
    .command('wait')
    .description("Wait for a job of the daemon to finish (its progress on stderr), print its result as the command that submitted it would, and exit with its status (0 done, 1 failed).")
    .argument('<id>', 'job id (from --async or hotplug jobs)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (id: string, opts: { json?: boolean }) => {
        if (!JOB_ID_RE.test(id)) throw new UserError(`not a job id: ${JSON.stringify(id.slice(0, 40))}`, 2);
        const conn = await connectDaemon();
        if (conn) {
          try {
            return await waitJob(conn, id, { json: opts.json });
          } finally {
            conn.close();
          }
        }
        const job = readJobsFromDisk().find((j) => j.id === id);
        if (!job) throw new UserError(`no job ${id} (and no daemon running)`);
        if (job.state === 'queued' || job.state === 'running') throw new UserError(`job ${id} is ${job.state} but no daemon runs; a new daemon will mark it failed and run it again`);
        return finish(job, opts.json === true);
      }),
    );
}
