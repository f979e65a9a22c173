/** The bench's text table: one block per lab mode, then idle RSS and the goals. */
import type { BenchResult } from './result.js';

/** Seconds with two decimals from milliseconds; '—' for none. */
export const fmtS = (ms: number | null | undefined) => (ms === null || ms === undefined ? '—' : (ms / 1000).toFixed(2));

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
    lines.push('', `== ${res.options.cloud && res.options.cloud !== 'ec2' ? `${res.options.cloud} ` : ''}${mode} lab ==`, head, '-'.repeat(head.length));
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
  for (const l of res.labs.filter((x) => x.idlePssMb != null)) {
    const by = (m?: Record<string, number>) => (m ? ` (${Object.entries(m).map(([k, v]) => `${k} ${v}`).join(', ')})` : '');
    lines.push(`PSS ${l.name}: idle ${l.idlePssMb} MB${by(l.idlePssByComm)} → ${l.endPssMb ?? '?'} MB${by(l.endPssByComm)} after ${l.events ?? 0} events; RSS ${l.idleRssMb} → ${l.endRssMb ?? '?'} MB`);
  }
  if (res.longIdle?.samples.length) {
    lines.push(`PSS ${res.longIdle.lab} (daemon idle ${res.longIdle.minutes} min, no event): ${res.longIdle.samples.map((x) => `${Math.round(x.s / 60)} min ${x.pssMb}`).join(', ')} MB`);
  }
  if (res.goals.length) {
    lines.push('', 'goals:');
    for (const g of res.goals) lines.push(`  [${g.met === null ? ' - ' : g.met ? 'met' : 'MISSED'}] ${g.contender}: ${g.goal}: ${g.value}`);
  }
  return lines.join('\n');
}
