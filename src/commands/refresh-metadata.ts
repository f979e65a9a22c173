/**
 * `hotplug refresh-metadata`: re-crawl the cached datasource and store it whole, or change nothing.
 * With a daemon running, a job of the daemon; without, one-shot.
 */
import type { Command } from 'commander';
import { action } from './common.js';
import { requireRoot, withCommandLock, withSession } from '../core/session.js';
import { refreshMetadata } from '../core/refresh.js';
import { paths } from '../paths.js';
import { log } from '../util/log.js';
import { printRefresh, viaDaemon } from './job-client.js';

export function register(program: Command): void {
  program
    .command('refresh-metadata')
    .description(
      `Re-crawl the cached datasource's metadata service and store the result: obj.pkl (atomically),
cloud-init's instance-data.json, and the network config as JSON in ${paths.networkConfigJson}.
If the crawl fails nothing on disk changes. When the daemon runs, this is a job of the daemon.`,
    )
    .option('--async', 'submit to the daemon and print the job id at once (see hotplug wait)')
    .option('--no-daemon', 'run here even when the daemon runs')
    .option('--json', 'print the refreshed summary as JSON')
    .action(
      action(async (opts: { json?: boolean; async?: boolean; daemon: boolean }) => {
        requireRoot('refresh-metadata');
        if (opts.daemon !== false || opts.async) {
          const code = await viaDaemon('refresh', {}, opts);
          if (code !== null) return code;
        }
        const r = await withCommandLock(() => withSession(async ({ bridge }) => refreshMetadata(bridge)));
        log('info', 'metadata refreshed', { datasource: r.summary.datasource, macs: r.summary.macs.length, duration_ms: r.durationMs });
        printRefresh({ summary: r.summary, network_config: r.networkConfig, duration_ms: r.durationMs }, !!opts.json);
      }),
    );
}
