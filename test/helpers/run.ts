/** Run the built CLI (or any program) and capture its result; tests assert on real exit codes and output. */
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = join(ROOT, 'dist/src/cli.js');

export async function cli(args: string[], env: Record<string, string | undefined> = {}) {
  return execa(process.execPath, [CLI, ...args], { reject: false, env, extendEnv: true });
}
