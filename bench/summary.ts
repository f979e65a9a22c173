/** From measurements to the summary rows (median/min/max per mode, scenario, contender; ratio to upstream) and the goals met or missed. */
import { CONTENDERS } from './contenders.js';
import { stat, LAG_S, type Measurement } from './scenarios.js';
import { SCENARIO_IDS } from './plan.js';
import { fmtS } from './table.js';
import type * as lab from '../scripts/lab/index.js';
import type { BenchResult, Goal, SummaryRow } from './result.js';

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
