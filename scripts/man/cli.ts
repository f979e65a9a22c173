#!/usr/bin/env node
/**
 * Writes hotplug(8) from the commander tree (run by `npm run build` → dist/man/hotplug.8, and by
 * scripts/package.sh for the .deb): `node dist/scripts/man/cli.js [OUT]`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manPage } from './page.js';

// The page names the real paths, not a test root (paths.ts reads HOTPLUG_ROOT when imported).
delete process.env.HOTPLUG_ROOT;
const { buildProgram, VERSION } = await import('../../src/program.js');
const { paths } = await import('../../src/paths.js');
const { RULE_PATH } = await import('../../src/install/files.js');

/** The date of the build's source: SOURCE_DATE_EPOCH (reproducible builds), else HEAD's commit date. */
function sourceDate(): string {
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  if (epoch > 0) return new Date(epoch * 1000).toISOString().slice(0, 10);
  try {
    return execFileSync('git', ['log', '-1', '--format=%cs'], { cwd: dirname(fileURLToPath(import.meta.url)), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

const out = process.argv[2] ?? fileURLToPath(new URL('../../man/hotplug.8', import.meta.url));
const page = manPage({
  program: await buildProgram(),
  version: VERSION,
  date: sourceDate(),
  files: [
    [paths.configFile, 'configuration (optional; every key optional, unknown keys refused).'],
    [`/${RULE_PATH}`, 'the udev rule written by install.'],
    [paths.queueDir, 'queued events, one JSON file each, deleted only after handling.'],
    [paths.lockFile, 'the apply lock (flock).'],
    [paths.runDir, 'runtime state: the last network config, the last apply, recent events, the routing state, the daemon socket.'],
    [paths.disabledFlag, 'present when hotplug is locally disabled (disable).'],
    [paths.logFile, 'one JSON line per handled event.'],
  ],
});
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, page);
