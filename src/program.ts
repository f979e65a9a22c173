/**
 * The `hotplug` command tree (commander), built without parsing: cli.ts runs it, and the manual
 * page generator (scripts/man/) walks it at build time.
 */
import { Command } from 'commander';
import { register as refreshMetadata } from './commands/refresh-metadata.js';
import { register as apply } from './commands/apply.js';
import { register as query } from './commands/query.js';
import { register as status } from './commands/status.js';
import { register as handle } from './commands/handle.js';
import { register as worker } from './commands/worker.js';
import { register as enable } from './commands/enable.js';
import { register as install } from './commands/install.js';
import { register as routes } from './commands/routes.js';
import { register as daemon } from './commands/daemon.js';
import { register as jobs } from './commands/jobs.js';

export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('hotplug')
    .description('Network hotplug for cloud instances, driving the installed cloud-init through a Python bridge.')
    .version(VERSION)
    .showHelpAfterError();
  for (const reg of [refreshMetadata, apply, query, status, handle, worker, enable, install, routes, daemon, jobs]) reg(program);
  return program;
}
