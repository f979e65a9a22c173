#!/usr/bin/env node
/**
 * `npm run bench`: boots lab clouds (scripts/lab) and measures cloud-init 22.4.2's own hotplug
 * hook against cloud-hotplug (one-shot, and the daemon when built) on the same udev events.
 * Prints a table, writes bench/results/<timestamp>.json and bench/results/latest.json.
 * See bench/README.md for what is measured and the JSON fields.
 *
 * This file is the command line (commander); the bench itself is runner.ts, and this module
 * re-exports its API for the callers that import bench/run.js (test/integration/bench-quick).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import type * as lab from '../scripts/lab/index.js';
import { CONTENDERS } from './contenders.js';
import { LabCtx } from './lib/labctx.js';
import { SCENARIO_IDS } from './plan.js';
import { runBench, active, type BenchOptions } from './runner.js';
import { summarize, goals } from './summary.js';
import { table } from './table.js';
import type { BenchResult } from './result.js';

export { runBench, type BenchOptions } from './runner.js';
export { SCENARIO_IDS } from './plan.js';
export { summarize, goals } from './summary.js';
export { table } from './table.js';
export type { BenchResult, SummaryRow, Goal } from './result.js';

const list = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);

function runs(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 20) throw new InvalidArgumentError('must be 1..20');
  return n;
}

function seconds(v: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError('must be a number of seconds > 0');
  return n;
}

function minutes(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 120) throw new InvalidArgumentError('must be a whole number of minutes, 0..120');
  return n;
}

/** Every value of a comma-separated list must be one of `known`. */
function oneOf(what: string, known: readonly string[]) {
  return (v: string): string[] => {
    const xs = list(v);
    const bad = xs.find((x) => !known.includes(x));
    if (bad !== undefined) throw new InvalidArgumentError(`unknown ${what} ${bad} (${known.join(', ')})`);
    return xs;
  };
}

/** The options; without a flag the default depends on --quick, so runBench chooses it. */
export function buildProgram(): Command {
  return new Command('bench')
    .description("cloud-init 22.4.2's hotplug hook vs cloud-hotplug, in lab clouds (root only; see bench/README.md)")
    .option('--runs <n>', 'repeats of the generic lab (default 2; --quick: 1)', runs)
    .option('--quick', 'smoke run: generic lab, one run, add1 and remove1, budget 300 s, labs b-q-…')
    .option('--modes <list>', 'lab modes: generic,faithful (default both; --quick: generic)', oneOf('mode', ['generic', 'faithful']))
    .option('--contenders <list>', `contenders (default all: ${CONTENDERS.map((c) => c.id).join(',')})`, oneOf('contender', CONTENDERS.map((c) => c.id)))
    .option('--scenarios <list>', `scenarios (default all: ${SCENARIO_IDS.join(',')}; --quick: add1,remove1)`, oneOf('scenario', SCENARIO_IDS))
    .option('--budget <seconds>', 'skip lab jobs that would start after this (default 570; --quick: 300)', seconds)
    .option('--idle-minutes <n>', 'minutes the daemon is left idle in a lab of its own after the jobs, for the 10-minute idle PSS goal (default 10 on ec2; other clouds and --quick: 0; 0 = none)', minutes)
    .addOption(new Option('--cloud <cloud>', 'the cloud every lab emulates (default ec2)').choices(['ec2', 'openstack', 'configdrive']))
    .option('--no-save', 'do not write bench/results/')
    .option('--results <dir>', 'where results go (default bench/results)')
    .option('--prefix <prefix>', 'lab name prefix: labs are PREFIX-… (default b; --quick: b-q)')
    .option('--report <file>', "print a saved result's table (summary and goals recomputed); runs nothing")
    .addHelpText('after', '\n--runs is 2 by default because 3 do not fit the 10-minute budget on 2 cores.\nnode dist/bench/run.js --report bench/results/latest.json reprints a saved run.')
    .allowExcessArguments(false)
    .configureOutput({ outputError: (s, write) => write(`bench: ${s.replace(/^error: /, '')}`) })
    .exitOverride();
}

function parseArgs(argv: string[]): BenchOptions {
  const program = buildProgram();
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    // commander has printed the help (exit 0) or a one-line error; a bad flag exits 2
    process.exit((e as { exitCode?: number }).exitCode === 0 ? 0 : 2);
  }
  const v = program.opts<{ cloud?: 'ec2' | 'openstack' | 'configdrive'; runs?: number; quick?: boolean; modes?: string[]; contenders?: string[]; scenarios?: string[]; budget?: number; idleMinutes?: number; save: boolean; results?: string; prefix?: string; report?: string }>();
  const o: BenchOptions = {};
  if (v.runs !== undefined) o.runs = v.runs;
  if (v.quick) o.quick = true;
  if (v.modes) o.modes = v.modes as lab.LabMode[];
  if (v.contenders) o.contenders = v.contenders;
  if (v.scenarios) o.scenarios = v.scenarios;
  if (v.budget !== undefined) o.budgetS = v.budget;
  if (v.idleMinutes !== undefined) o.idleMinutes = v.idleMinutes;
  if (!v.save) o.save = false;
  if (v.results !== undefined) o.resultsDir = v.results;
  if (v.prefix !== undefined) o.prefix = v.prefix;
  if (v.report !== undefined) o.report = v.report;
  if (v.cloud !== undefined) o.cloud = v.cloud;
  return o;
}

function printReport(file: string): void {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as BenchResult;
  saved.summary = summarize(saved.measurements);
  saved.goals = goals(saved.summary, saved.labs, saved.contenders, saved.measurements, saved.longIdle ?? null);
  const commit = saved.run?.commit ?? String(saved.machine.gitCommit);
  const clean = saved.run ? saved.run.clean : saved.machine.gitDirty === false;
  process.stdout.write(`${file}: ${saved.startedAt}, ${saved.durationS} s, commit ${commit.slice(0, 12)}${clean ? '' : ' (DIRTY tree)'}\n`);
  process.stdout.write(table(saved) + '\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.report) {
    printReport(opts.report);
    process.exit(0);
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: must run as root (it boots lab clouds in network namespaces)\n');
    process.exit(2);
  }
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`bench: ${sig}: taking down ${[...active].join(', ') || 'nothing'}\n`);
      void Promise.all([...active].map((n) => new LabCtx(n, 'generic').down())).finally(() => process.exit(130));
    });
  }
  const res = await runBench(opts);
  process.stdout.write(table(res) + '\n');
  if (res.failures.length) {
    process.stdout.write(`\nwrong results:\n${res.failures.map((f) => `  ${f}`).join('\n')}\n`);
  }
  const tree = res.run?.clean ? `clean tree at ${res.run.commit.slice(0, 12)}` : `DIRTY tree at ${res.run?.commit.slice(0, 12)}`;
  process.stdout.write(`\n${res.ok ? 'ok' : 'FAILED'}: ${res.measurements.length} measurements in ${res.durationS} s (${tree})\n`);
  process.exit(res.ok ? 0 : 1);
}
