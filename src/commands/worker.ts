import type { Command } from 'commander';
import { action } from './common.js';
import { requireRoot } from '../core/session.js';
import { runWorker } from '../pipeline/worker.js';

export function register(program: Command): void {
  program
    .command('worker')
    .description('Drain the event queue under the apply lock (started by the udev hook; safe to run by hand).')
    .option('--wait', 'wait for the lock instead of leaving it to the worker that holds it')
    .action(
      action(async (o: { wait?: boolean }) => {
        requireRoot('worker');
        return runWorker({ waitForLock: !!o.wait });
      }),
    );
}
