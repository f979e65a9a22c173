/**
 * A lab stack suite's results file (test/results/lab-<stack>-<date>.json and lab-<stack>-latest.json):
 * every check's outcome, written from the suite's `after` hook, for the README's table of stacks.
 * The same shape as the VM suite's, without timings (speed belongs to the bench).
 */
import { join } from 'node:path';
import { REPO, finishRun, stamp, writeResults, type RunInfo } from '../../scripts/results/record.js';
import { checksOf, type VmResults } from './vm/results.js';

export type LabStackResults = Omit<VmResults, 'kind' | 'flavour' | 'timings'> & { kind: 'lab-stack'; stack: string };

/** Where results go: STACK_RESULTS=1 (`npm run test:stacks`) test/results, a directory there; unset: nowhere, so `npm test` leaves the tree clean. */
export function stackResultsDir(env = process.env.STACK_RESULTS): string | null {
  if (!env || env === '0') return null;
  return env === '1' ? join(REPO, 'test/results') : env;
}

/** Writes the file (returns its path), or nothing when no check ran or no results were asked for. */
export function writeLabStackResults(stack: string, run: RunInfo, suite: Mocha.Suite | undefined, dir = stackResultsDir()): string | null {
  if (!dir) return null;
  const checks = checksOf(suite);
  if (!checks.some((c) => c.state === 'passed' || c.state === 'failed')) return null;
  const passed = checks.filter((c) => c.state === 'passed').length;
  const body: LabStackResults = {
    schema: 1,
    kind: 'lab-stack',
    stack,
    run: finishRun(run),
    checks,
    goals: [{ goal: 'every check passed', value: `${passed}/${checks.length} passed`, met: passed === checks.length }],
  };
  return writeResults(dir, `lab-${stack}-${stamp(run.startedAt)}.json`, body, `lab-${stack}-latest.json`);
}
