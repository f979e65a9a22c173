/** `hotplug worker`: the one-shot queue drain (pipeline/worker.ts) the udev program starts. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { action } from './common.js';
import { requireRoot } from '../core/session.js';
import { runWorker } from '../pipeline/worker.js';
import { parseLockFd } from '../core/head-start.js';
import { reassertReplacement } from '../install/replace.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';

export function register(program: Command): void {
  program
    .command('worker')
    .description('Drain the event queue under the apply lock (started by the udev hook; safe to run by hand).')
    .option('--wait', 'wait for the lock instead of leaving it to the worker that holds it')
    .option('--boot', "the boot replay: first keep cloud-init's hotplug rule aside if install replaced it")
    // Only the udev program passes it: the fd on which it took the apply lock for this worker.
    .addOption(new Option('--lock-fd <fd>', 'the inherited fd that holds the apply lock (udev program only)').argParser(lockFd).hideHelp())
    .action(
      action(async (o: { wait?: boolean; boot?: boolean; lockFd?: number }) => {
        requireRoot('worker');
        if (o.boot) {
          // Never fatal: the queued events matter more than the rule.
          const said = await reassertReplacement().catch((e) => [`could not re-check cloud-init's hotplug rule: ${oneLine(e)}`]);
          for (const s of said) log('info', s);
        }
        return runWorker({ waitForLock: !!o.wait, handedLockFd: o.lockFd });
      }),
    );
}

function lockFd(v: string): number {
  const fd = parseLockFd(v);
  if (fd === undefined) throw new InvalidArgumentError('an fd from 3 to 9');
  return fd;
}
