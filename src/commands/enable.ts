/** `hotplug enable` / `disable`: the local switch the pipeline's gate reads. */
import type { Command } from 'commander';
import { action } from './common.js';
import { requireRoot } from '../core/session.js';
import { setLocallyDisabled } from '../pipeline/gate.js';
import { paths } from '../paths.js';

export function register(program: Command): void {
  program
    .command('enable')
    .description(`Allow cloud-hotplug to act on events again (undoes "disable"). cloud-init must also enable hotplug (see query).`)
    .action(
      action(async () => {
        requireRoot('enable');
        await setLocallyDisabled(false);
        process.stdout.write('cloud-hotplug: enabled locally\n');
      }),
    );
  program
    .command('disable')
    .description(`Stop acting on hotplug events (persisted in ${paths.disabledFlag}); events are logged as skipped.`)
    .action(
      action(async () => {
        requireRoot('disable');
        await setLocallyDisabled(true);
        process.stdout.write('cloud-hotplug: disabled locally\n');
      }),
    );
}
