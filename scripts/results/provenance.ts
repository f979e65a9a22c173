/** The line under every generated table: which results file, commit, date, clean or dirty, machine and load. */
import type { RunInfo } from './record.js';

export interface Source {
  /** Path relative to the repository. */
  file: string;
  commit: string;
  clean: boolean;
  startedAt: string;
  cores?: number;
  loadBefore?: number[];
  loadAfter?: number[] | null;
  durationS?: number;
}

export const fromRun = (file: string, run: RunInfo): Source => ({
  file,
  commit: run.commit,
  clean: run.clean,
  startedAt: run.startedAt,
  cores: run.machine.cores,
  loadBefore: run.machine.loadavgBefore,
  loadAfter: run.machine.loadavgAfter,
  ...(run.finishedAt ? { durationS: Math.round((Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000) } : {}),
});

/** e.g. "From `bench/results/latest.json`: run of 2026-11-25 21:42 UTC, commit 25f30aec9368, **dirty tree** (…), 2 cores, load 3.36 → 2.08, 404 s." */
export function provenance(s: Source): string {
  const when = s.startedAt.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC');
  const parts = [
    `run of ${when}`,
    `commit ${s.commit.slice(0, 12)}`,
    s.clean ? 'clean tree' : '**dirty tree** (uncommitted changes: these figures may not match that commit)',
  ];
  if (s.cores) parts.push(`${s.cores} cores`);
  if (s.loadBefore) parts.push(`load average ${s.loadBefore[0]}${s.loadAfter ? ` → ${s.loadAfter[0]}` : ''}`);
  if (s.durationS !== undefined) parts.push(`${s.durationS} s`);
  return `From \`${s.file}\`: ${parts.join(', ')}.`;
}

/** The block shown where no results file exists yet. */
export const notMeasured = (what: string, file: string) => `Not measured yet: no \`${file}\` (${what}).`;
