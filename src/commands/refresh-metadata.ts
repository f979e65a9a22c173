/** `hotplug refresh-metadata`: re-crawl the cached datasource and store it whole, or change nothing. */
import type { Command } from 'commander';
import { action, printJson } from './common.js';
import { requireRoot, withCommandLock, withSession } from '../core/session.js';
import { refreshMetadata } from '../core/refresh.js';
import { paths } from '../paths.js';
import { log } from '../util/log.js';

export function register(program: Command): void {
  program
    .command('refresh-metadata')
    .description(
      `Re-crawl the cached datasource's metadata service and store the result: obj.pkl (atomically),
cloud-init's instance-data.json, and the network config as JSON in ${paths.networkConfigJson}.
If the crawl fails nothing on disk changes.`,
    )
    .option('--json', 'print the refreshed summary as JSON')
    .action(
      action(async (opts: { json?: boolean }) => {
        requireRoot('refresh-metadata');
        const r = await withCommandLock(() => withSession(async ({ bridge }) => refreshMetadata(bridge)));
        log('info', 'metadata refreshed', { datasource: r.summary.datasource, macs: r.summary.macs.length, duration_ms: r.durationMs });
        if (opts.json) printJson({ summary: r.summary, network_config: r.networkConfig, duration_ms: r.durationMs });
        else process.stdout.write(`refreshed ${r.summary.datasource} ${r.summary.instance_id}: ${r.summary.macs.length} interface(s) in metadata\n`);
      }),
    );
}
