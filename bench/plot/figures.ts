/**
 * The bench's two pictures, drawn from a results file: time to configured and metadata requests
 * against NICs attached at once (generic lab: add1, nics4, nics8, nics16; the 16 × 8 secondary
 * IPs run as a second marker at 16), one line per contender. Written next to the results file as
 * <name>-time.svg and <name>-requests.svg (latest.json → latest-time.svg, latest-requests.svg).
 */
import { writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { renderChart, type ChartSpec, type Point, type Series } from './chart.js';
import type { BenchResult, SummaryRow } from '../result.js';

/** NICs at once for each storm scenario; nics16x8 is drawn apart (same 16 NICs, 8 IPs each). */
const NICS: Record<string, number> = { add1: 1, nics4: 4, nics8: 8, nics16: 16 };
const VARIANT = 'nics16x8';
/** Fixed colours per contender (colour-blind-safe Okabe–Ito hues), grey for any other. */
const COLORS: Record<string, string> = { upstream: '#D55E00', oneshot: '#0072B2', daemon: '#009E73' };

type Pick = (r: SummaryRow) => Point | null;

/** The run's identity for the subtitle: date, commit, machine; a dirty tree is said loudly. */
export function runIdentity(res: BenchResult): string[] {
  const m = res.machine as { gitCommit?: unknown; gitDirty?: unknown; cores?: unknown };
  const commit = typeof m.gitCommit === 'string' && /^[0-9a-f]{7,}$/.test(m.gitCommit) ? m.gitCommit.slice(0, 10) : 'unknown commit';
  const when = res.startedAt.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC');
  const lines = [`bench run ${when} · commit ${commit} · ${m.cores ?? '?'} cores · generic lab · median of ${res.options.runs} run(s)`];
  if (m.gitDirty === true) lines.push('!run on a dirty tree: uncommitted changes were measured');
  else if (m.gitDirty !== false) lines.push('!tree state not recorded');
  return lines;
}

/** Which contenders to draw, in the results file's order. */
function contenders(res: BenchResult): { id: string; label: string }[] {
  return res.contenders.map((c) => ({ id: c.id, label: c.id === 'oneshot' ? 'one-shot' : c.id }));
}

/**
 * One series per contender from the summary rows of the generic lab. A row that is not `ok`
 * (failed, not supported, skipped) is not a time to configured: it is left out and named in a
 * footnote rather than drawn as if it were one.
 */
function seriesOf(res: BenchResult, pick: Pick): { series: Series[]; left: string[] } {
  const left: string[] = [];
  const series = contenders(res).map(({ id, label }): Series => {
    const rows = res.summary.filter((r) => r.mode === 'generic' && r.contender === id);
    const take = (r: SummaryRow, x: number): Point | null => {
      if (r.status !== 'ok') {
        left.push(`${r.scenario} ${label} (${r.status})`);
        return null;
      }
      const p = pick(r);
      return p ? { ...p, x } : null;
    };
    const points = rows.filter((r) => r.scenario in NICS).map((r) => take(r, NICS[r.scenario]!)).filter((p): p is Point => p !== null);
    const extra = rows.filter((r) => r.scenario === VARIANT).map((r) => take(r, 16)).filter((p): p is Point => p !== null);
    return { name: label, color: COLORS[id] ?? '#666666', points, extra };
  });
  return { series, left };
}

const secs = (ms: number) => (ms >= 10_000 ? (ms / 1000).toFixed(0) : ms >= 1000 ? (ms / 1000).toFixed(1) : (ms / 1000).toFixed(2));

export function timeSpec(res: BenchResult): ChartSpec {
  const { series, left } = seriesOf(res, (r) =>
    r.timeMs ? { x: 0, y: r.timeMs.median / 1000, min: r.timeMs.min / 1000, max: r.timeMs.max / 1000, label: `${secs(r.timeMs.median)} s` } : null,
  );
  return {
    title: 'Time to configured against NICs attached at once',
    subtitle: runIdentity(res),
    xLabel: 'NICs attached at once (one ip -batch)',
    yLabel: 'kernel event → last address up, s (log scale)',
    xScale: 'log',
    yScale: 'log',
    xTicks: Object.values(NICS),
    yFormat: (v) => `${v < 1 ? v.toFixed(1) : v.toFixed(0)} s`,
    series,
    legendNotes: [
      { marker: 'bar', text: 'min–max over the runs' },
      { marker: 'diamond', text: '16 NICs × 8 secondary IPs each (one run)' },
      { marker: 'none', text: 'upstream = cloud-init 22.4.2’s own hotplug hook' },
    ],
    footnotes: left.length ? [`not plotted (no time to configured): ${left.join(', ')}`] : [],
  };
}

export function requestsSpec(res: BenchResult): ChartSpec {
  const { series, left } = seriesOf(res, (r) => (r.imdsRequests ? { x: 0, y: Math.max(r.imdsRequests.median, 0.5), label: String(r.imdsRequests.median) } : null));
  return {
    title: 'Metadata requests against NICs attached at once',
    subtitle: runIdentity(res),
    xLabel: 'NICs attached at once (one ip -batch)',
    yLabel: 'requests to the metadata service (log scale)',
    xScale: 'log',
    yScale: 'log',
    xTicks: Object.values(NICS),
    yFormat: (v) => (v >= 1000 ? `${v / 1000}k` : String(v)),
    series,
    legendNotes: [
      { marker: 'diamond', text: '16 NICs × 8 secondary IPs each (one run)' },
      { marker: 'none', text: 'every HTTP request the lab’s IMDS counted (token PUTs included), median over the runs' },
    ],
    footnotes: left.length ? [`not plotted: ${left.join(', ')}`] : [],
  };
}

export const timeSvg = (res: BenchResult) => renderChart(timeSpec(res));
export const requestsSvg = (res: BenchResult) => renderChart(requestsSpec(res));

/** Writes <name>-time.svg and <name>-requests.svg beside `resultsFile`; returns their paths. */
export function writeFigures(res: BenchResult, resultsFile: string): string[] {
  const base = join(dirname(resultsFile), basename(resultsFile).replace(/\.json$/, ''));
  const files: [string, string][] = [
    [`${base}-time.svg`, timeSvg(res)],
    [`${base}-requests.svg`, requestsSvg(res)],
  ];
  for (const [f, svg] of files) writeFileSync(f, svg);
  return files.map(([f]) => f);
}
