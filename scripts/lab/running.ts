/** What every lab operation shares: its options, its progress lines, and loading the running lab it acts on. */
import { labPaths, checkName, type LabPaths } from './paths.js';
import { loadState, type LabState } from './state.js';
import { isAlive } from './proc.js';
import { UserError } from '../../src/util/errors.js';

export interface LabOptions {
  name?: string;
  /** No progress lines on stderr. */
  quiet?: boolean;
}

export function progress(o: LabOptions, msg: string): void {
  if (!o.quiet) process.stderr.write(`lab ${checkName(o.name)}: ${msg}\n`);
}

export const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** The lab's state; refuses a lab that does not exist or whose holder died (there is nothing to act on). */
export async function mustLoad(p: LabPaths): Promise<LabState> {
  const s = await loadState(p.state).catch(() => null);
  if (!s) throw new UserError(`no lab ${p.name} (run \`lab up --name ${p.name}\`)`);
  if (!isAlive(s.holder)) throw new UserError(`lab ${p.name} is not running (phase ${s.phase}); run \`lab down\` then \`lab up\``);
  return s;
}

/** PID of the lab's holder: every process of the instance is entered through its namespaces. */
export async function holderPid(name?: string): Promise<number> {
  const p = labPaths(name);
  const s = await mustLoad(p);
  return s.holder!.pid;
}
