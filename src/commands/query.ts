/** `hotplug query`: whether cloud-init would handle network hotplug on this instance. */
import type { Command } from 'commander';
import { action } from './common.js';
import { requireRoot, withSession } from '../core/session.js';

export function register(program: Command): void {
  program
    .command('query')
    .description(
      `Print "enabled" or "disabled" for network hotplug, decided as cloud-init decides it: the cached
datasource supports the hotplug event and user/vendor data (updates.network.when) enables it.
Exit 1 when no datasource is cached.`,
    )
    .option('-v, --verbose', 'also print why')
    .action(
      action(async (opts: { verbose?: boolean }) => {
        requireRoot('query');
        const st = await withSession(async ({ summary }) => summary.hotplug);
        process.stdout.write(`${st.enabled ? 'enabled' : 'disabled'}${opts.verbose ? ` (${st.reason})` : ''}\n`);
      }),
    );
}
