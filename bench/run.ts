#!/usr/bin/env node
/**
 * `npm run bench`: boots lab clouds (scripts/lab) and measures cloud-init 22.4.2's own hotplug
 * hook against cloud-hotplug (one-shot, and the daemon when built) on the same udev events.
 * Prints a table, writes bench/results/<timestamp>.json and bench/results/latest.json.
 * See bench/README.md for what is measured and the JSON fields.
 *
 *   node dist/bench/run.js [--runs N] [--quick] [--modes generic,faithful]
 *                          [--contenders upstream,oneshot,daemon] [--scenarios add1,remove1,…]
 *                          [--budget SECONDS] [--no-save] [--results DIR] [--prefix b]
 *   node dist/bench/run.js --report bench/results/latest.json     (print a saved result's table)
 * Defaults: --runs 2 (3 does not fit the 10-minute budget on 2 cores), both modes, every
 * contender and scenario, --budget 570.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { cpus, totalmem, loadavg, release, hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lab from '../scripts/lab/index.js';
import { CONTENDERS, ROOT, type Contender } from './contenders.js';
import { LabCtx } from './lib/labctx.js';
import { AddrWatcher, RssSampler } from './lib/watch.js';
import { add1, remove1, lag, secip, multi, stat, emptyMeasurement, LAG_S, type Scenario, type Measurement, type Env, type Stat } from './scenarios.js';

export interface BenchOptions {
  runs?: number;
  quick?: boolean;
  modes?: lab.LabMode[];
  contenders?: string[];
  scenarios?: string[];
  /** Seconds; lab jobs that would start after it are skipped (reported). */
  budgetS?: number;
  save?: boolean;
  resultsDir?: string;
  /** Lab name prefix (labs are `<prefix>-…`). */
  prefix?: string;
  quiet?: boolean;
  /** CLI only: print the table of a saved result (summary and goals recomputed), run nothing. */
  report?: string;
}

/** A lab booted for one contender, running some scenarios in order. */
interface Job {
  mode: lab.LabMode;
  group: string;
  contender: Contender;
  run: number;
  scenarios: Scenario[];
}

/** Labs up right now (taken down on SIGINT/SIGTERM). */
const active = new Set<string>();

const GROUPS: { id: string; scenarios: Scenario[]; once?: boolean }[] = [
  { id: 'a', scenarios: [add1, remove1, lag, secip] },
  { id: 'n4', scenarios: [multi(4)] },
  { id: 'n8', scenarios: [multi(8)] },
  { id: 'n16', scenarios: [multi(16)] },
  { id: 'x', scenarios: [multi(16, 8)], once: true },
];
export const SCENARIO_IDS = GROUPS.flatMap((g) => g.scenarios.map((s) => s.id));

export interface SummaryRow {
  mode: lab.LabMode;
  scenario: string;
  contender: string;
  runs: number;
  status: string;
  correct: string;
  timeMs: Stat & { min: number } | null;
  ratio: number | null;
  handledMs: Stat | null;
  afterMetadataMs: Stat | null;
  triggeredMs: number | null;
  crawls: Stat | null;
  imdsRequests: Stat | null;
  udevMs: Stat | null;
  hookMs: Stat | null;
  cpuS: Stat | null;
  peakRssMb: Stat | null;
  peakProcRssMb: Stat | null;
  notes: string[];
}

export interface Goal {
  goal: string;
  contender: string;
  value: string;
  met: boolean | null;
}

export interface BenchResult {
  schema: 1;
  tool: 'cloud-hotplug bench';
  startedAt: string;
  finishedAt: string;
  durationS: number;
  options: { runs: number; quick: boolean; modes: string[]; contenders: string[]; scenarios: string[]; budgetS: number };
  machine: Record<string, unknown>;
  contenders: { id: string; label: string; available: boolean; reason?: string }[];
  labs: { name: string; mode: string; contender: string; run: number; upMs: number; idleRssMb: number | null; error?: string }[];
  measurements: Measurement[];
  summary: SummaryRow[];
  goals: Goal[];
  /** Quick mode verdict: every result of ours correct and upstream's add correct. */
  ok: boolean;
  failures: string[];
  notes: string[];
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return '?';
  }
}

function machine(): Record<string, unknown> {
  const cpu = cpus();
  return {
    hostname: hostname(),
    cpuModel: cpu[0]?.model ?? '?',
    cores: cpu.length,
    memoryMb: Math.round(totalmem() / 2 ** 20),
    kernel: release(),
    node: process.version,
    python: sh('/usr/bin/python3', ['-c', 'import sys; print(sys.version.split()[0])']),
    cloudInit: sh('/usr/bin/python3', ['-c', 'from cloudinit import version; print(version.version_string())']),
    iproute2: sh('ip', ['-V']),
    gitCommit: sh('git', ['-C', ROOT, 'rev-parse', 'HEAD']),
    gitDirty: sh('git', ['-C', ROOT, 'status', '--porcelain']) !== '',
    loadavgAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

async function otherLabs(prefix: string): Promise<string[]> {
  return (await lab.listLabs()).filter((n) => !n.startsWith(prefix + '-'));
}

/**
 * Order: generic run 1 (every group, 16×8 included), then the faithful lab (one run), then the
 * remaining generic runs; contenders rotate every run. If the time budget runs out, what is
 * skipped is a repeat, never a whole scenario or mode.
 */
function plan(o: Required<Pick<BenchOptions, 'runs' | 'quick' | 'modes' | 'scenarios'>>, contenders: Contender[]): Job[] {
  const jobs: Job[] = [];
  const rot = (r: number) => contenders.map((_, i) => contenders[(i + r - 1) % contenders.length]!);
  const generic = (run: number) => {
    for (const g of GROUPS) {
      if (g.once && run > 1) continue;
      const sc = g.scenarios.filter((s) => o.scenarios.includes(s.id));
      if (sc.length) for (const c of rot(run)) jobs.push({ mode: 'generic', group: g.id, contender: c, run, scenarios: sc });
    }
  };
  const faithful = () => {
    // the single-NIC group once; no secip (the poller is the same on both labs). Upstream: add1
    // only, capped: it fails every event after ~50 s of retries there.
    const sc = GROUPS[0]!.scenarios.filter((s) => o.scenarios.includes(s.id) && s.id !== 'secip');
    for (const c of contenders) {
      const mine = c.ours ? sc : sc.filter((s) => s.id === 'add1');
      if (mine.length) jobs.push({ mode: 'faithful', group: 'a', contender: c, run: 1, scenarios: mine });
    }
  };
  if (o.modes.includes('generic')) generic(1);
  if (o.modes.includes('faithful')) faithful();
  if (o.modes.includes('generic')) for (let run = 2; run <= o.runs; run++) generic(run);
  return jobs;
}

const fmtS = (ms: number | null | undefined) => (ms === null || ms === undefined ? '—' : (ms / 1000).toFixed(2));

export function summarize(ms: Measurement[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const keys = [...new Set(ms.map((m) => `${m.mode}|${m.scenario}|${m.contender}`))];
  for (const k of keys) {
    const [mode, scenario, contender] = k.split('|') as [lab.LabMode, string, string];
    const xs = ms.filter((m) => m.mode === mode && m.scenario === scenario && m.contender === contender);
    const num = (f: (m: Measurement) => number | null | undefined) => stat(xs.map(f).filter((v): v is number => typeof v === 'number'));
    const t = num((m) => m.timeMs);
    const statuses = [...new Set(xs.map((m) => m.status))];
    const judged = xs.filter((m) => m.correct !== null);
    rows.push({
      mode,
      scenario,
      contender,
      runs: xs.length,
      status: statuses.join('/'),
      correct: judged.length ? `${judged.filter((m) => m.correct).length}/${judged.length}` : 'n/a',
      timeMs: t ? { ...t, min: Math.min(...xs.map((m) => m.timeMs).filter((v): v is number => v !== null)) } : null,
      ratio: null,
      handledMs: num((m) => m.handledMs),
      afterMetadataMs: num((m) => m.afterMetadataMs),
      triggeredMs: xs.find((m) => typeof m.triggeredMs === 'number')?.triggeredMs ?? null,
      crawls: num((m) => m.crawls),
      imdsRequests: num((m) => m.imdsRequests),
      udevMs: num((m) => m.udevMs?.max),
      hookMs: num((m) => m.hookMs?.max),
      cpuS: num((m) => m.cpuS),
      peakRssMb: num((m) => m.peakRssMb),
      peakProcRssMb: num((m) => m.peakProcRssMb),
      notes: [...new Set(xs.flatMap((m) => [...m.notes, ...m.problems]))].slice(0, 4),
    });
  }
  const sIdx = (id: string) => (SCENARIO_IDS.indexOf(id) + 1 || 99);
  const cIdx = (id: string) => (CONTENDERS.findIndex((c) => c.id === id) + 1 || 99);
  rows.sort((a, b) => (a.mode === b.mode ? 0 : a.mode === 'generic' ? -1 : 1) || sIdx(a.scenario) - sIdx(b.scenario) || cIdx(a.contender) - cIdx(b.contender));
  for (const r of rows) {
    const up = rows.find((x) => x.mode === r.mode && x.scenario === r.scenario && x.contender === 'upstream');
    if (r.timeMs && up?.timeMs && up.status === 'ok' && r.status === 'ok') r.ratio = Math.round((r.timeMs.median / up.timeMs.median) * 100) / 100;
  }
  return rows;
}

export function goals(rows: SummaryRow[], labs: BenchResult['labs'], contenders: BenchResult['contenders']): Goal[] {
  const out: Goal[] = [];
  const row = (sc: string, c: string) => rows.find((r) => r.mode === 'generic' && r.scenario === sc && r.contender === c);
  const avail = (c: string) => contenders.find((x) => x.id === c)?.available;
  for (const c of ['daemon', 'oneshot']) {
    if (!contenders.some((x) => x.id === c)) continue;
    if (!avail(c)) {
      out.push({ goal: 'all goals', contender: c, value: 'not available', met: null });
      continue;
    }
    const a = row('add1', c);
    if (c === 'daemon' || a) {
      out.push({
        goal: 'one NIC add ≤ 0.5× upstream' + (c === 'daemon' ? '' : ' (goal is for the daemon; one-shot for reference)'),
        contender: c,
        value: a?.ratio !== null && a?.ratio !== undefined ? `${a.ratio}×` : 'not measured',
        met: c === 'daemon' && a?.ratio != null ? a.ratio <= 0.5 : null,
      });
    }
    const n16 = row('nics16', c);
    if (a?.timeMs && n16?.timeMs) {
      const r = n16.timeMs.median / a.timeMs.median;
      out.push({ goal: '16 NICs at once ≤ 2× own one-NIC time', contender: c, value: `${r.toFixed(2)}× (${fmtS(n16.timeMs.median)} s vs ${fmtS(a.timeMs.median)} s)`, met: r <= 2 });
    }
    // constant = the same small count for 4, 8 and 16 NICs at once (max over runs; ±1 allowed:
    // a second batch when events straddle the first crawl); all counts are shown
    const cr = ['add1', 'nics4', 'nics8', 'nics16', 'nics16x8'].map((s) => [s, row(s, c)?.crawls?.max] as const).filter(([, v]) => v !== undefined);
    const storm = cr.filter(([s]) => s === 'nics4' || s === 'nics8' || s === 'nics16').map(([, v]) => v!);
    if (storm.length > 1) {
      out.push({ goal: 'constant number of metadata crawls (4, 8, 16 NICs at once)', contender: c, value: cr.map(([s, v]) => `${s}:${v}`).join(' '), met: Math.max(...storm) - Math.min(...storm) <= 1 && Math.max(...storm) <= 3 });
    }
    const l = row('lag1.5', c);
    if (l?.afterMetadataMs) out.push({ goal: `lag ${LAG_S} s: configured ≤ 0.3 s after metadata appears`, contender: c, value: `median ${l.afterMetadataMs.median} ms, max ${l.afterMetadataMs.max} ms`, met: l.afterMetadataMs.max <= 300 });
    // the hook's own duration_ms; single-NIC events and storms (N hooks at once on 2 cores) apart
    for (const [what, storm] of [['single-NIC events', false], ['4–16 NICs at once', true]] as const) {
      const hooks = rows.filter((r) => r.contender === c && r.hookMs && r.scenario.startsWith('nics') === storm).map((r) => r.hookMs!.max);
      if (hooks.length) out.push({ goal: `udev program < 100 ms (${what})`, contender: c, value: `max ${Math.max(...hooks)} ms (hook duration_ms)`, met: Math.max(...hooks) < 100 });
    }
    if (c === 'daemon') {
      const idle = labs.filter((x) => x.contender === 'daemon' && x.idleRssMb !== null).map((x) => x.idleRssMb!);
      out.push({ goal: 'idle daemon RSS (node + python) ≤ 80 MB', contender: c, value: idle.length ? `max ${Math.max(...idle)} MB` : 'not measured', met: idle.length ? Math.max(...idle) <= 80 : null });
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------- table

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

export function table(res: BenchResult): string {
  const lines: string[] = [];
  const cols: [string, number, boolean][] = [
    ['scenario', 10, false],
    ['contender', 9, false],
    ['n', 2, true],
    ['time s (min–max)', 20, true],
    ['×upstr', 7, true],
    ['crawls', 6, true],
    ['IMDS', 5, true],
    ['udev ms', 8, true],
    ['hook ms', 8, true],
    ['CPU s', 6, true],
    ['RSS MB sum/1', 12, true],
    ['correct', 8, true],
    ['status', 13, false],
  ];
  const head = cols.map(([h, w, r]) => pad(h, w, r)).join(' ');
  for (const mode of [...new Set(res.summary.map((r) => r.mode))]) {
    lines.push('', `== ${mode} lab ==`, head, '-'.repeat(head.length));
    for (const r of res.summary.filter((x) => x.mode === mode)) {
      const t = r.timeMs ? `${fmtS(r.timeMs.median)} (${fmtS(r.timeMs.min)}–${fmtS(r.timeMs.max)})` : '—';
      const v = [
        r.scenario,
        r.contender,
        String(r.runs),
        t,
        r.ratio === null ? (r.contender === 'upstream' && r.timeMs && r.status === 'ok' ? '1' : '—') : r.ratio.toFixed(2),
        r.crawls ? String(r.crawls.median) : '—',
        r.imdsRequests ? String(r.imdsRequests.median) : '—',
        r.udevMs ? String(Math.round(r.udevMs.max)) : '—',
        r.hookMs ? String(Math.round(r.hookMs.max)) : '—',
        r.cpuS ? r.cpuS.median.toFixed(2) : '—',
        r.peakRssMb && r.peakProcRssMb ? `${Math.round(r.peakRssMb.max)}/${Math.round(r.peakProcRssMb.max)}` : '—',
        r.correct,
        r.status,
      ];
      lines.push(cols.map(([, w, right], i) => pad(v[i]!, w, right)).join(' '));
      const extra: string[] = [];
      if (r.afterMetadataMs) extra.push(`after metadata appeared: median ${r.afterMetadataMs.median} ms, max ${r.afterMetadataMs.max} ms`);
      if (r.triggeredMs !== null) extra.push(`triggered by hand: ${fmtS(r.triggeredMs)} s`);
      extra.push(...r.notes);
      for (const e of extra) lines.push(`${' '.repeat(13)}↳ ${e}`);
    }
  }
  const idle = res.labs.filter((l) => l.idleRssMb);
  if (idle.length) lines.push('', `idle RSS after setup (node+python): ${[...new Set(idle.map((l) => `${l.contender} ${l.idleRssMb} MB`))].join(', ')}`);
  if (res.goals.length) {
    lines.push('', 'goals:');
    for (const g of res.goals) lines.push(`  [${g.met === null ? ' - ' : g.met ? 'met' : 'MISSED'}] ${g.contender}: ${g.goal}: ${g.value}`);
  }
  return lines.join('\n');
}

// --------------------------------------------------------------------------------------- run

export async function runBench(opts: BenchOptions = {}): Promise<BenchResult> {
  const quick = !!opts.quick;
  const o = {
    runs: quick ? 1 : (opts.runs ?? 2),
    quick,
    modes: opts.modes ?? (quick ? ['generic' as const] : ['generic' as const, 'faithful' as const]),
    scenarios: opts.scenarios ?? (quick ? ['add1', 'remove1'] : SCENARIO_IDS),
    budgetS: opts.budgetS ?? (quick ? 300 : 570),
  };
  const prefix = opts.prefix ?? (quick ? 'b-q' : 'b');
  const t0 = Date.now();
  const log = (s: string) => {
    if (!opts.quiet) process.stderr.write(`bench ${String(Math.round((Date.now() - t0) / 1000)).padStart(4)}s: ${s}\n`);
  };
  const startedAt = new Date().toISOString();
  const mach = machine();
  const others0 = await otherLabs(prefix);
  const all = CONTENDERS.filter((c) => !opts.contenders || opts.contenders.includes(c.id));
  const cinfo = all.map((c) => {
    const why = c.unavailable();
    return { id: c.id, label: c.label, available: !why, ...(why ? { reason: why } : {}) };
  });
  const usable = all.filter((c) => !c.unavailable());
  const jobs = plan(o, usable);
  log(`${jobs.length} lab jobs (${usable.map((c) => c.id).join(', ')}; ${o.modes.join(', ')}; runs ${o.runs})${others0.length ? `; other labs running: ${others0.join(', ')}` : ''}`);

  const measurements: Measurement[] = [];
  const labs: BenchResult['labs'] = [];
  const notes: string[] = [];
  for (const c of cinfo.filter((c) => !c.available)) {
    for (const mode of o.modes) {
      measurements.push(...o.scenarios.map((s) => notAvailable(mode, s, c.id, c.reason!)));
    }
  }
  for (const mode of o.modes) {
    if (mode !== 'faithful' || !usable.some((c) => c.id === 'upstream')) continue;
    for (const s of o.scenarios.filter((x) => x !== 'add1' && GROUPS[0]!.scenarios.some((g) => g.id === x) && x !== 'secip')) {
      measurements.push({ ...notAvailable(mode, s, 'upstream', 'not run: every upstream event fails after ~50 s on this lab (see add1)'), status: 'skipped', run: 1 });
    }
  }
  let idx = 0;
  for (const job of jobs) {
    idx++;
    const name = `${prefix}-${job.mode[0]}-${job.contender.id.slice(0, 2)}-${job.group}-${job.run}`;
    if ((Date.now() - t0) / 1000 > o.budgetS) {
      notes.push(`time budget (${o.budgetS} s) reached: ${name} skipped`);
      for (const s of job.scenarios) measurements.push({ ...notAvailable(job.mode, s.id, job.contender.id, 'skipped: time budget'), status: 'skipped', run: job.run });
      continue;
    }
    const ctx = new LabCtx(name, job.mode);
    active.add(name);
    const watcher = new AddrWatcher(ctx);
    const entry: BenchResult['labs'][number] = { name, mode: job.mode, contender: job.contender.id, run: job.run, upMs: 0, idleRssMb: null };
    labs.push(entry);
    try {
      log(`[${idx}/${jobs.length}] ${name}: up (${job.mode}), ${job.contender.id}: ${job.scenarios.map((s) => s.id).join(', ')}`);
      entry.upMs = Math.round(await ctx.up());
      await job.contender.setup(ctx);
      await new Promise((r) => setTimeout(r, job.contender.poller ? 1000 : 300));
      entry.idleRssMb = Math.round((new RssSampler(ctx).sampleNow().totalKb / 1024) * 10) / 10;
      await watcher.start();
      const env: Env = { ctx, contender: job.contender, watcher, run: job.run, state: {} };
      for (const s of job.scenarios) {
        let m: Measurement;
        try {
          m = await s.run(env);
        } catch (e) {
          m = { ...notAvailable(job.mode, s.id, job.contender.id, `error: ${(e as Error).message.split('\n')[0]}`), status: 'error', correct: false, run: job.run, lab: name };
        }
        measurements.push(m);
        log(
          `  ${s.id} ${job.contender.id}: ${m.status}${m.timeMs !== null ? ` ${fmtS(m.timeMs)} s` : ''}` +
            `${m.afterMetadataMs != null ? ` (+${m.afterMetadataMs} ms after metadata)` : ''} crawls=${m.crawls ?? '—'} cpu=${m.cpuS ?? '—'}s rss=${m.peakRssMb ?? '—'}MB correct=${m.correct}` +
            `${m.problems.length ? ` problems: ${m.problems.join('; ')}` : ''}${m.notes.length ? ` (${m.notes.join('; ')})` : ''}`,
        );
      }
    } catch (e) {
      entry.error = (e as Error).message.split('\n')[0];
      log(`  ${name}: ${entry.error}`);
      for (const s of job.scenarios) {
        if (!measurements.some((m) => m.lab === name && m.scenario === s.id)) {
          measurements.push({ ...notAvailable(job.mode, s.id, job.contender.id, `error: ${entry.error}`), status: 'error', correct: false, run: job.run, lab: name });
        }
      }
    } finally {
      watcher.stop();
      // Sequential on purpose: a lab's `down` overlapping another lab's `up` can kill the new
      // lab's `ip -n` (it matches processes by the dead holder's mount-ns inode, which the
      // kernel recycles).
      await ctx.down();
      active.delete(name);
    }
  }

  const summary = summarize(measurements);
  const failures: string[] = [];
  for (const m of measurements) {
    const c = all.find((x) => x.id === m.contender);
    if (!c || m.status === 'not-available' || m.status === 'skipped' || m.status === 'not-supported') continue;
    // ours must be right everywhere; upstream's add must work on the generic lab (harness sanity)
    const mustBeRight = c.ours || (m.mode === 'generic' && m.scenario === 'add1');
    if (mustBeRight && m.correct !== true) failures.push(`${m.mode} ${m.scenario} ${m.contender} run ${m.run}: ${m.status} ${[...m.problems, ...m.notes].join('; ')}`);
  }
  const others1 = await otherLabs(prefix);
  const res: BenchResult = {
    schema: 1,
    tool: 'cloud-hotplug bench',
    startedAt,
    finishedAt: new Date().toISOString(),
    durationS: Math.round((Date.now() - t0) / 1000),
    options: { runs: o.runs, quick, modes: o.modes, contenders: all.map((c) => c.id), scenarios: o.scenarios, budgetS: o.budgetS },
    machine: { ...mach, loadavgAtEnd: loadavg().map((x) => Math.round(x * 100) / 100), otherLabsAtStart: others0, otherLabsAtEnd: others1 },
    contenders: cinfo,
    labs,
    measurements,
    summary,
    goals: goals(summary, labs, cinfo),
    ok: failures.length === 0,
    failures,
    notes: [
      ...notes,
      "upstream: Debian's 22.4.2 hook-hotplug writes to systemd's cloud-init-hotplugd FIFO; the lab has no systemd, so a bash stand-in for cloud-init-hotplugd.socket/.service reads it and runs `cloud-init devel hotplug-hook` serially (see bench/contenders.ts)",
      'udev ms = kernel uevent → udevd done with the event (udevadm monitor timestamps), same method for every contender; hook ms = our hook’s own duration_ms',
      ...(others0.length || others1.length ? [`other labs were running (timings noisy): ${[...new Set([...others0, ...others1])].join(', ')}`] : []),
    ],
  };
  if (opts.save ?? true) {
    const dir = opts.resultsDir ?? join(ROOT, 'bench/results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${startedAt.replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
    const text = JSON.stringify(res, null, 2) + '\n';
    writeFileSync(file, text);
    if (!quick) writeFileSync(join(dir, 'latest.json'), text);
    log(`results: ${file}`);
  }
  return res;
}

function notAvailable(mode: lab.LabMode, scenario: string, contender: string, why: string): Measurement {
  return emptyMeasurement({ mode, scenario, contender, run: 0, lab: '', status: 'not-available', notes: [why] });
}

// ---------------------------------------------------------------------------------------- CLI

function parseArgs(argv: string[]): BenchOptions {
  const o: BenchOptions = {};
  const list = (v: string | undefined) => (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--runs') {
      o.runs = Number(val());
      if (!Number.isInteger(o.runs) || o.runs < 1 || o.runs > 20) throw new Error('--runs must be 1..20');
    } else if (a === '--quick') o.quick = true;
    else if (a === '--modes') o.modes = list(val()) as lab.LabMode[];
    else if (a === '--contenders') o.contenders = list(val());
    else if (a === '--scenarios') o.scenarios = list(val());
    else if (a === '--budget') o.budgetS = Number(val());
    else if (a === '--no-save') o.save = false;
    else if (a === '--results') o.resultsDir = val();
    else if (a === '--prefix') o.prefix = val();
    else if (a === '--report') o.report = val();
    else if (a === '-h' || a === '--help') {
      const src = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
      const end = src.findIndex((l) => l.startsWith(' */'));
      process.stdout.write(src.slice(2, end).map((l) => l.replace(/^ \* ?/, '')).join('\n') + '\n');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  for (const m of o.modes ?? []) if (m !== 'generic' && m !== 'faithful') throw new Error(`unknown mode ${m}`);
  for (const c of o.contenders ?? []) if (!CONTENDERS.some((x) => x.id === c)) throw new Error(`unknown contender ${c} (${CONTENDERS.map((x) => x.id).join(', ')})`);
  for (const s of o.scenarios ?? []) if (!SCENARIO_IDS.includes(s)) throw new Error(`unknown scenario ${s} (${SCENARIO_IDS.join(', ')})`);
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let opts: BenchOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    process.exit(2);
  }
  if (opts.report) {
    const saved = JSON.parse(readFileSync(opts.report, 'utf8')) as BenchResult;
    saved.summary = summarize(saved.measurements);
    saved.goals = goals(saved.summary, saved.labs, saved.contenders);
    process.stdout.write(`${opts.report}: ${saved.startedAt}, ${saved.durationS} s, commit ${String(saved.machine.gitCommit).slice(0, 12)}\n`);
    process.stdout.write(table(saved) + '\n');
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
  process.stdout.write(`\n${res.ok ? 'ok' : 'FAILED'}: ${res.measurements.length} measurements in ${res.durationS} s\n`);
  process.exit(res.ok ? 0 : 1);
}
