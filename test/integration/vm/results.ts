/**
 * The VM suite's results file: its timings and every check's outcome, written through
 * scripts/results/record.ts to test/results/vm-<flavour>-<date>.json and vm-<flavour>-latest.json
 * from the suite's `after` hook, so a failing check is recorded too. A run whose every test was
 * skipped writes nothing.
 */
import { join } from 'node:path';
import { REPO, finishRun, stamp, writeResults, type RunInfo, type Verdict } from '../../../scripts/results/record.js';

export type CheckState = 'passed' | 'failed' | 'skipped' | 'not run';

export interface VmResults {
  schema: 1;
  kind: 'vm';
  flavour: string;
  run: RunInfo;
  /** Seconds, by name (boot_s, attach_to_configured_s, …); a step that did not happen is absent. */
  timings: Record<string, number>;
  checks: { title: string; state: CheckState; error?: string }[];
  goals: Verdict[];
}

/** Every test of the suite with its outcome (a failed before hook leaves them 'not run'). */
export function checksOf(suite: Mocha.Suite | undefined): VmResults['checks'] {
  const out: VmResults['checks'] = [];
  const walk = (s: Mocha.Suite) => {
    for (const t of s.tests) {
      const state: CheckState = t.state === 'passed' || t.state === 'failed' ? t.state : t.isPending() ? 'skipped' : 'not run';
      out.push({ title: t.title, state, ...(t.err ? { error: t.err.message.split('\n')[0]!.slice(0, 300) } : {}) });
    }
    s.suites.forEach(walk);
  };
  if (suite) walk(suite);
  return out;
}

/**
 * Writes the file (returns its path), or nothing when no check ran at all (every one skipped or
 * not run: the suite could not start here, e.g. its preflight failed, which fails the run anyway).
 * CHV_RESULTS_DIR redirects it (tests of the suite itself must not write into the repository).
 */
export function writeVmResults(flavour: string, run: RunInfo, timings: Record<string, number>, suite: Mocha.Suite | undefined, dir = process.env.CHV_RESULTS_DIR || join(REPO, 'test/results')): string | null {
  const checks = checksOf(suite);
  if (!checks.some((c) => c.state === 'passed' || c.state === 'failed')) return null;
  const passed = checks.filter((c) => c.state === 'passed').length;
  const body: VmResults = {
    schema: 1,
    kind: 'vm',
    flavour,
    run: finishRun(run),
    timings,
    checks,
    goals: [{ goal: 'every check passed', value: `${passed}/${checks.length} passed`, met: passed === checks.length }],
  };
  return writeResults(dir, `vm-${flavour}-${stamp(run.startedAt)}.json`, body, `vm-${flavour}-latest.json`);
}
