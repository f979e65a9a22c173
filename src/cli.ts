#!/usr/bin/env node
/** `hotplug`: runs the command tree of program.ts; each command lives in src/commands/. */
import { SAFE_PATH } from './paths.js';

process.env.PATH = SAFE_PATH;
const args = process.argv.slice(2);
// The one-shot worker starts Python (cloud-init's imports) before node loads the rest of its modules.
if (args[0] === 'worker') await (await import('./core/head-start.js')).workerHeadStart(args.slice(1));
const { buildProgram } = await import('./program.js');
const program = await buildProgram(args);

program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? 0 : 2);
});

await program.parseAsync(process.argv);
// pythonia's timers keep node alive; every command has closed its bridge by now.
process.exit(process.exitCode ?? 0);
