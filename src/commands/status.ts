import type { Command } from 'commander';
import { action, printJson } from './common.js';
import { withSession } from '../core/session.js';
import { bootState } from '../core/boot.js';
import { readLastApply } from '../core/last-apply.js';
import { oneLine } from '../util/errors.js';
import type { InstanceSummary } from '../../bridge/index.js';

export function register(program: Command): void {
  program
    .command('status')
    .description('Show cloud-init boot state, datasource, instance id, whether hotplug is enabled, and the last apply.')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { json?: boolean }) => {
        const boot = await bootState();
        let summary: InstanceSummary | null = null;
        let cacheError: string | null = null;
        try {
          summary = await withSession(async (s) => s.summary);
        } catch (e) {
          cacheError = oneLine(e);
        }
        const last = await readLastApply();
        const st = {
          cloud_init: boot,
          datasource: summary?.datasource ?? null,
          instance_id: summary?.instance_id ?? null,
          hotplug: summary ? summary.hotplug : { enabled: null, reason: cacheError },
          interfaces_in_metadata: summary?.macs ?? [],
          last_apply: last,
        };
        if (opts.json) return printJson(st);
        const lines = [
          `cloud-init:   ${boot.status}${boot.errors.length ? ` (${boot.errors.length} error(s))` : ''}`,
          `datasource:   ${st.datasource ?? '-'}`,
          `instance id:  ${st.instance_id ?? '-'}`,
          `hotplug:      ${summary ? (summary.hotplug.enabled ? 'enabled' : 'disabled') : 'unknown'} (${st.hotplug.reason})`,
          `metadata:     ${st.interfaces_in_metadata.length} interface(s)`,
          `last apply:   ${last ? `${last.time} ${last.result} in ${last.duration_ms} ms${last.error ? `: ${last.error}` : ''}` : 'never'}`,
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );
}
