#!/usr/bin/env node
/** `hotplug`: runs the command tree of program.ts; each command lives in src/commands/. */
import { buildProgram } from './program.js';
import { SAFE_PATH } from './paths.js';

process.env.PATH = SAFE_PATH;
const program = buildProgram();

program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? 0 : 2);
});

await program.parseAsync(process.argv);
// pythonia's timers keep node alive; every command has closed its bridge by now.
process.exit(process.exitCode ?? 0);
