/** `hotplug apply`: a full apply of the instance's network config through the pipeline (apply-all.ts), or what it would do. */
import type { Command } from 'commander';
import YAML from 'yaml';
import { action, printJson } from './common.js';
import { requireRoot, withCommandLock } from '../core/session.js';
import { loadConfig } from '../config.js';
import { newBridgeManager } from '../core/bridges.js';
import { defaultDeps } from '../pipeline/deps.js';
import { applyAll, type ApplyOptions } from '../pipeline/apply-all.js';

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
bringing interfaces up. Refreshes metadata first (as refresh-metadata) unless --no-refresh.`,
    )
    .option('--no-refresh', 'apply the cached config without asking the metadata service')
    .option('--dry-run', 'print the network config and the files it would write; change nothing')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { refresh: boolean; dryRun?: boolean; json?: boolean }) => {
        requireRoot('apply');
        const run = () => applyOnce({ refresh: opts.refresh, dryRun: !!opts.dryRun });
        // A dry run changes nothing, so it need not wait for the lock.
        const r = opts.dryRun ? await run() : await withCommandLock(run);
        if (opts.json) {
          printJson({ dry_run: !!opts.dryRun, refreshed: r.refreshed, duration_ms: r.durationMs, network_config: r.view.network_config, files: r.files, routes: r.routeLines });
          return;
        }
        if (opts.dryRun) {
          process.stdout.write('# network config (would apply)\n' + YAML.stringify(r.view.network_config));
          for (const f of r.files ?? []) {
            process.stdout.write(`# ${f.changed ? 'would write' : 'unchanged'}: ${f.path}\n`);
            if (f.changed) process.stdout.write(f.content.replace(/^/gm, '  ') + '\n');
          }
          process.stdout.write('# policy routing (would run)\n');
          for (const l of r.routeLines ?? []) process.stdout.write(`  ${l}\n`);
          return;
        }
        process.stdout.write(`applied: ${r.view.interfaces.map((i) => i.name).join(' ')} (${r.durationMs} ms${r.refreshed ? ', refreshed' : ''})\n`);
      }),
    );
}
