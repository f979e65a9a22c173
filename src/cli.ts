#!/usr/bin/env node
/** `hotplug`: commander wiring only; each command lives in src/commands/. */
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

import { SAFE_PATH } from './paths.js';

process.env.PATH = SAFE_PATH;
const program = new Command();
program
  .name('hotplug')
  .description('Network hotplug for cloud instances, driving the installed cloud-init through a Python bridge.')
  .version('0.1.0')
  .showHelpAfterError();

for (const reg of [refreshMetadata, apply, query, status, handle, worker, enable, install, routes, daemon]) reg(program);

program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? 0 : 2);
});

await program.parseAsync(process.argv);
// pythonia's timers keep node alive; every command has closed its bridge by now.
process.exit(process.exitCode ?? 0);
