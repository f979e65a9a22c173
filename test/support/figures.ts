/**
 * Figures of the reliability suite: each area's test file reports what it did (events handled,
 * faults injected, crashes survived, inputs rejected, events lost) and, in its `after` hook, how
 * its checks went. With RELIABILITY_RESULTS set (`npm run test:reliability`) the run is written
 * through scripts/results/record.ts to test/results/reliability-<date>.json and
 * reliability-latest.json (RELIABILITY_RESULTS=<dir> writes there instead); without it nothing
 * is written (CI must not dirty the tree) and each area prints one line. One mocha process is
 * one run: the file holds the areas that process ran.
 */
import { join } from 'node:path';
import { REPO, finishRun, startRun, stamp, writeResults, type RunInfo, type Verdict } from '../../scripts/results/record.js';

export interface AreaFigures {
  /** What the area tests, one line. */
  what: string;
  events: number;
  faults: number;
  crashes: number;
  rejected: number;
  /** Computed from expected vs observed (test/support/tally.ts); null = not measured. */
  lost: number | null;
  seconds: number;
  /** e.g. the storm's seed, or why lost is not measured. */
  notes?: string;
}

export interface AreaResult extends AreaFigures {
  at: string;
  /** Every test of the area and its outcome (filled by recordChecks). */
  checks: { title: string; state: 'passed' | 'failed' | 'skipped' | 'not run' }[];
}

export interface ReliabilityResults {
  schema: 1;
  kind: 'reliability';
  run: RunInfo;
  areas: Record<string, AreaResult>;
  goals: Verdict[];
}

/** Where results go: null (not asked), or a directory. */
export function resultsDir(env = process.env.RELIABILITY_RESULTS): string | null {
  if (!env || env === '0') return null;
  return env === '1' ? join(REPO, 'test/results') : env;
}

// One run per process: started when the first area loads this module, before any test ran.
const run0 = startRun(['test/results']);
const areas: Record<string, AreaResult> = {};

/** Goals of the reliability suite, per area: nothing lost, every check passed. */
export function goalsOf(all: Record<string, AreaResult>): Verdict[] {
  const out: Verdict[] = [];
  for (const [area, a] of Object.entries(all).sort(([x], [y]) => x.localeCompare(y))) {
    out.push({ goal: `${area}: nothing lost`, value: a.lost === null ? 'not measured' : `${a.lost} lost`, met: a.lost === null ? null : a.lost === 0 });
    const passed = a.checks.filter((c) => c.state === 'passed').length;
    out.push({ goal: `${area}: every check passed`, value: a.checks.length ? `${passed}/${a.checks.length} passed` : 'not recorded', met: a.checks.length ? passed === a.checks.length : null });
  }
  return out;
}

function save(say: boolean): void {
  const dir = resultsDir();
  if (!dir) return;
  const body: ReliabilityResults = { schema: 1, kind: 'reliability', run: finishRun(run0), areas, goals: goalsOf(areas) };
  const file = writeResults(dir, `reliability-${stamp(run0.startedAt)}.json`, body, 'reliability-latest.json');
  if (say) process.stderr.write(`      results: ${file}${run0.clean ? '' : ' (DIRTY tree)'}\n`);
}

/** One area's figures (replacing what it reported before in this run). */
export function recordFigures(area: string, f: AreaFigures): void {
  areas[area] = { ...f, at: new Date().toISOString(), checks: areas[area]?.checks ?? [] };
  process.stderr.write(`      figures ${area}: events ${f.events}, faults ${f.faults}, crashes ${f.crashes}, rejected ${f.rejected}, lost ${f.lost ?? 'not measured'}\n`);
  save(false);
}

/** From an `after` hook: the outcome of every test of the suite, recorded with the area's figures. */
export function recordChecks(area: string, suite: Mocha.Suite | undefined): void {
  const checks: AreaResult['checks'] = [];
  const walk = (s: Mocha.Suite) => {
    for (const t of s.tests) checks.push({ title: t.title, state: t.state === 'passed' || t.state === 'failed' ? t.state : t.isPending() ? 'skipped' : 'not run' });
    s.suites.forEach(walk);
  };
  if (suite) walk(suite);
  // a failing before hook leaves the tests without a state: 'not run', which is not a pass
  const a = areas[area];
  if (!a) {
    areas[area] = { what: '(no figures: the area stopped before reporting them)', events: 0, faults: 0, crashes: 0, rejected: 0, lost: null, seconds: 0, at: new Date().toISOString(), checks };
  } else a.checks = checks;
  save(true);
}
