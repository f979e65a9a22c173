import type { Command } from 'commander';
import { action, printJson } from './common.js';
import { withSession } from '../core/session.js';
import { bootState } from '../core/boot.js';
import { readLastApply } from '../core/last-apply.js';
import { oneLine } from '../util/errors.js';
import type { InstanceSummary } from '../../bridge/index.js';
import { readAdvert, request } from '../daemon/kick.js';
import { pendingCount } from '../events/queue.js';
import { recentEvents } from '../pipeline/history.js';

/** The running daemon's status (it answers from memory), or why there is none. */
async function daemonStatus(): Promise<Record<string, any>> {
  const ad = readAdvert();
  if (!ad) return { running: false };
  const r = await request(ad.socket, { op: 'status' }, 5000);
  if (r?.ok === true && r.status && typeof r.status === 'object') return r.status as Record<string, any>;
  return { running: false, reason: `no answer on ${ad.socket} (advertised by pid ${ad.pid})` };
}

export function register(program: Command): void {
  program
    .command('status')
    .description('Show cloud-init boot state, datasource, instance id, whether hotplug is enabled, the last apply, the queue and the daemon (asked over its socket when it runs).')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { json?: boolean }) => {
        const boot = await bootState();
        const daemon = await daemonStatus();
        let summary: InstanceSummary | null = null;
        let cacheError: string | null = null;
        if (daemon.running && daemon.summary) {
          // The daemon's warm bridge already knows: no Python start here.
          summary = daemon.summary as InstanceSummary;
        } else {
          try {
            summary = await withSession(async (s) => s.summary);
          } catch (e) {
            cacheError = oneLine(e);
          }
        }
        const last = await readLastApply();
        const st = {
          cloud_init: boot,
          datasource: summary?.datasource ?? null,
          instance_id: summary?.instance_id ?? null,
          hotplug: summary ? summary.hotplug : { enabled: null, reason: cacheError },
          interfaces_in_metadata: summary?.macs ?? [],
          last_apply: last,
          queue: { pending: await pendingCount().catch(() => null) },
          recent_events: (await recentEvents()).slice(-10),
          daemon,
        };
        if (opts.json) return printJson(st);
        const lines = [
          `cloud-init:   ${boot.status}${boot.errors.length ? ` (${boot.errors.length} error(s))` : ''}`,
          `datasource:   ${st.datasource ?? '-'}`,
          `instance id:  ${st.instance_id ?? '-'}`,
          `hotplug:      ${summary ? (summary.hotplug.enabled ? 'enabled' : 'disabled') : 'unknown'} (${st.hotplug.reason})`,
          `metadata:     ${st.interfaces_in_metadata.length} interface(s)`,
          `last apply:   ${last ? `${last.time} ${last.result} in ${last.duration_ms} ms${last.error ? `: ${last.error}` : ''}` : 'never'}`,
          `queue:        ${st.queue.pending ?? '-'} event(s) pending`,
          `daemon:       ${
            daemon.running
              ? `running, pid ${daemon.pid}, ${daemon.state}; bridge pid ${daemon.bridge?.pid ?? '-'} ${daemon.bridge?.alive ? 'alive' : 'down'} (${daemon.bridge?.restarts ?? 0} restart(s)); RSS ${daemon.memory?.node_rss_mb} MB node + ${daemon.memory?.python_rss_mb ?? '-'} MB python`
              : `not running${daemon.reason ? ` (${daemon.reason})` : ''}`
          }`,
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );
}
