/**
 * `hotplug apply`: a full apply of the instance's network config through the pipeline
 * (apply-all.ts), or what it would do. With a daemon running, a job of the daemon (its warm bridge,
 * its one job queue); without, one-shot.
 */
import type { Command } from 'commander';
import { action } from './common.js';
import { requireRoot, withCommandLock } from '../core/session.js';
import { loadConfig } from '../config.js';
import { newBridgeManager } from '../core/bridges.js';
import { defaultDeps } from '../pipeline/deps.js';
import { applyAll, type ApplyOptions } from '../pipeline/apply-all.js';
import { printApply, viaDaemon } from './job-client.js';

/** One bridge session around the pipeline's full apply. */
async function applyOnce(opts: ApplyOptions) {
  const cfg = await loadConfig();
  const bridges = newBridgeManager();
  try {
    return await bridges.withBridge('apply', (b) => applyAll(defaultDeps(() => cfg, bridges), b, opts), { attempts: 1 });
  } finally {
    await bridges.stop();
  }
}

export function register(program: Command): void {
  program
    .command('apply')
    .description(
      `Apply the instance's network config through cloud-init's distro renderer and activator,
bringing interfaces up. Refreshes metadata first (as refresh-metadata) unless --no-refresh.
When the daemon runs, this is a job of the daemon (progress on stderr, its status as exit
status); otherwise it runs here.`,
    )
    .option('--no-refresh', 'apply the cached config without asking the metadata service')
    .option('--dry-run', 'print the network config and the files it would write; change nothing')
    .option('--async', 'submit to the daemon and print the job id at once (see hotplug wait)')
    .option('--no-daemon', 'run here even when the daemon runs')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { refresh: boolean; dryRun?: boolean; json?: boolean; async?: boolean; daemon: boolean }) => {
        requireRoot('apply');
        if (opts.daemon !== false || opts.async) {
          const code = await viaDaemon('apply', { refresh: opts.refresh, dryRun: !!opts.dryRun }, opts);
          if (code !== null) return code;
        }
        const run = () => applyOnce({ refresh: opts.refresh, dryRun: !!opts.dryRun });
        // A dry run changes nothing, so it need not wait for the lock.
        const r = opts.dryRun ? await run() : await withCommandLock(run);
        printApply(
          { dry_run: !!opts.dryRun, refreshed: r.refreshed, duration_ms: r.durationMs, network_config: r.view.network_config, files: r.files, routes: r.routeLines, interfaces: r.view.interfaces.map((i) => i.name) },
          !!opts.json,
          !!opts.dryRun,
        );
      }),
    );
}
