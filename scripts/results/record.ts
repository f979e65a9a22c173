/**
 * The one writer of results files: every run (bench, reliability suites, VM suite) says here
 * which commit it ran, whether the tree was clean, on what machine and under what load, and
 * writes its measurements and goal verdicts as `<dir>/<stem>-<date>.json` plus a "latest" copy.
 * Dev-only (scripts/package.sh ships src/ and bridge/ only).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is scripts/results/record.ts, built to dist/scripts/results/). */
const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, HERE.endsWith('/dist/scripts/results') ? '../../..' : '../..');

/** One goal's verdict as the run computed it (met: null = could not be measured). */
export interface Verdict {
  goal: string;
  value: string;
  met: boolean | null;
  contender?: string;
}

/** Where and on what a run ran: the same block in every results file. */
export interface RunInfo {
  commit: string;
  /** `git status --porcelain` was empty (the results files being written ignored). */
  clean: boolean;
  /** What made it dirty (first 20 porcelain lines). */
  dirty: string[];
  startedAt: string;
  finishedAt: string | null;
  machine: { cores: number; cpuModel: string; loadavgBefore: number[]; loadavgAfter: number[] | null };
}

const load = () => loadavg().map((x) => Math.round(x * 100) / 100);

function git(repo: string, args: string[]): string | null {
  try {
    return execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trimEnd();
  } catch {
    return null;
  }
}

/**
 * The tree's state when the run starts (the code that ran). Results files (`ignoreDirs`, e.g.
 * bench/results) are left out: a previous run's latest.json about to be replaced does not make
 * the code dirty.
 */
export function startRun(ignoreDirs: string[] = [], repo = REPO): RunInfo {
  const porcelain = git(repo, ['status', '--porcelain', '--untracked-files=all']);
  const ign = ignoreDirs.map((d) => relative(repo, resolve(repo, d)).replace(/\/?$/, '/'));
  const lines = (porcelain ?? '?? (git status failed)').split('\n').filter((l) => l && !ign.some((d) => l.slice(3).startsWith(d)));
  const cpu = cpus();
  return {
    commit: git(repo, ['rev-parse', 'HEAD']) ?? 'unknown',
    clean: porcelain !== null && lines.length === 0,
    dirty: lines.slice(0, 20),
    startedAt: new Date().toISOString(),
    finishedAt: null,
    machine: { cores: cpu.length, cpuModel: cpu[0]?.model ?? '?', loadavgBefore: load(), loadavgAfter: null },
  };
}

/** Marks the run finished now (load average after). */
export function finishRun(run: RunInfo): RunInfo {
  return { ...run, finishedAt: new Date().toISOString(), machine: { ...run.machine, loadavgAfter: load() } };
}

/** `2026-11-25T21:42:10.097Z` → `2026-11-25T21-42-10-097Z` (a file name). */
export const stamp = (iso: string) => iso.replace(/[:.]/g, '-');

/**
 * Writes `body` to `<dir>/<name>` and, unless `latest` is null, the same text to `<dir>/<latest>`
 * (each through a temp file and a rename, so a reader never sees half a file). Returns the path.
 */
export function writeResults(dir: string, name: string, body: unknown, latest: string | null): string {
  mkdirSync(dir, { recursive: true });
  const text = JSON.stringify(body, null, 2) + '\n';
  const put = (f: string) => {
    const tmp = `${f}.${process.pid}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, f);
  };
  const file = join(dir, name);
  put(file);
  if (latest) put(join(dir, latest));
  return file;
}
