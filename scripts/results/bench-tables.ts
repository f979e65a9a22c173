/**
 * The README's performance table and goals, from a bench results file (bench/results/latest.json):
 * every cell is a summary row of that one run, every verdict is the goal the run computed.
 */
import type { BenchResult, SummaryRow } from '../../bench/result.js';
import { fromRun, provenance, type Source } from './provenance.js';

const CONTENDERS = [
  ['upstream', 'upstream 22.4.2'],
  ['oneshot', 'one-shot'],
  ['daemon', 'daemon'],
] as const;

const s2 = (ms: number) => (ms / 1000).toFixed(2);

/** Where the bench result came from (runs before scripts/results/record.ts carry it in `machine`). */
export function benchSource(file: string, r: BenchResult): Source {
  if (r.run) return { ...fromRun(file, r.run), durationS: r.durationS };
  const m = r.machine as { gitCommit?: string; gitDirty?: boolean; cores?: number; loadavgAtStart?: number[]; loadavgAtEnd?: number[] };
  return {
    file,
    commit: m.gitCommit ?? 'unknown',
    clean: m.gitDirty === false,
    startedAt: r.startedAt,
    ...(m.cores ? { cores: m.cores } : {}),
    ...(m.loadavgAtStart ? { loadBefore: m.loadavgAtStart } : {}),
    loadAfter: m.loadavgAtEnd ?? null,
    durationS: r.durationS,
  };
}

/** One cell: median seconds (× upstream), or what happened instead. */
function cell(r: SummaryRow | undefined, fmt: (r: SummaryRow) => string | null = timeCell): string {
  if (!r) return 'not measured';
  if (/not-available/.test(r.status)) return 'not available';
  if (r.status === 'skipped') return 'not run';
  if (r.status === 'not-supported') return r.triggeredMs !== null ? `not supported; \`hotplug apply\` by hand: ${s2(r.triggeredMs)}` : 'not supported';
  if (r.status !== 'ok') return r.timeMs ? `${r.status} after ${s2(r.timeMs.max)}` : r.status;
  const v = fmt(r) ?? 'not measured';
  const [ok, n] = r.correct.split('/').map(Number);
  return ok !== undefined && n !== undefined && ok < n ? `${v}, **${r.correct} correct**` : v;
}

function timeCell(r: SummaryRow): string | null {
  if (!r.timeMs) return null;
  return r.ratio !== null && r.contender !== 'upstream' ? `${s2(r.timeMs.median)} (${r.ratio}×)` : s2(r.timeMs.median);
}

const tr = (cells: string[]) => `| ${cells.join(' | ')} |`;

export function performanceTable(file: string, r: BenchResult): string {
  const row = (mode: string, sc: string, c: string) => r.summary.find((x) => x.mode === mode && x.scenario === sc && x.contender === c);
  const line = (label: string, f: (c: string) => string) => tr([label, ...CONTENDERS.map(([c]) => f(c))]);
  const lines = [
    tr([`${r.options.cloud && r.options.cloud !== 'ec2' ? `${r.options.cloud} ` : ''}generic lab, median s (× upstream)`, ...CONTENDERS.map(([, l]) => l)]),
    tr(['---', ...CONTENDERS.map(() => '---')]),
    line('one NIC add', (c) => cell(row('generic', 'add1', c))),
    line('one NIC remove', (c) => cell(row('generic', 'remove1', c))),
    line('metadata 1.5 s late: ms after it appears (median / max)', (c) => cell(row('generic', 'lag1.5', c), (x) => (x.afterMetadataMs ? `${x.afterMetadataMs.median} / ${x.afterMetadataMs.max}` : null))),
    line('4 / 8 / 16 NICs at once', (c) => ['nics4', 'nics8', 'nics16'].map((s) => cell(row('generic', s, c), (x) => (x.timeMs ? s2(x.timeMs.median) : null))).join(' / ')),
    line('crawls (IMDS requests) for 16 NICs', (c) => cell(row('generic', 'nics16', c), (x) => (x.crawls ? `${x.crawls.median} (${x.imdsRequests?.median ?? '?'})` : null))),
    line('CPU s for 16 NICs', (c) => cell(row('generic', 'nics16', c), (x) => (x.cpuS ? String(x.cpuS.median) : null))),
    line('16 NICs × 8 IPs', (c) => cell(row('generic', 'nics16x8', c))),
    line('secondary IP, no device event (the daemon: its metadata poller)', (c) => cell(row('generic', 'secip', c))),
  ];
  if (r.summary.some((x) => x.mode === 'faithful')) lines.push(line('EC2-faithful lab: one NIC add', (c) => cell(row('faithful', 'add1', c))));
  const idle = (c: string) => {
    const xs = r.labs.filter((l) => l.contender === c && typeof l.idleRssMb === 'number' && l.idleRssMb > 0).map((l) => l.idleRssMb!);
    return xs.length ? `${Math.max(...xs)} MB` : '—';
  };
  lines.push(line('idle RSS, node + python (max)', idle));
  // Runs before PSS was measured have no such row.
  if (r.labs.some((l) => typeof l.idlePssMb === 'number')) {
    lines.push(
      line('idle PSS, node + python (max; before → after the lab with most events)', (c) => {
        const xs = r.labs.filter((l) => l.contender === c && typeof l.idlePssMb === 'number');
        if (!xs.length) return '—';
        const most = [...xs].sort((a, b) => (b.events ?? 0) - (a.events ?? 0))[0]!;
        return `${Math.max(...xs.map((l) => l.idlePssMb!))} MB; ${most.idlePssMb} → ${most.endPssMb ?? '?'} MB over ${most.events ?? 0} events`;
      }),
    );
  }
  // Only runs with the long-idle lab (EC2 by default) have this row; the daemon alone, no event.
  const li = r.longIdle;
  if (li?.samples.length) {
    const first = li.samples[0]!;
    const last = li.samples[li.samples.length - 1]!;
    lines.push(
      line(`idle PSS / RSS, daemon idle ${li.minutes} min in a lab of its own (first → last sample)`, (c) =>
        c === 'daemon' ? `${first.pssMb} → ${last.pssMb} MB / ${first.rssMb} → ${last.rssMb} MB` : '—',
      ),
    );
  }
  const notes = [...new Set(r.summary.filter((x) => x.mode === 'generic' && x.correct !== 'n/a' && !/^(\d+)\/\1$/.test(x.correct)).map((x) => `${x.scenario} ${x.contender}: ${x.notes.join('; ')}`))];
  const m = r.machine as { otherLabsAtStart?: string[]; otherLabsAtEnd?: string[] };
  const others = [...new Set([...(m.otherLabsAtStart ?? []), ...(m.otherLabsAtEnd ?? [])])];
  return [
    provenance(benchSource(file, r)) + (others.length ? ` Other labs running beside it (timings noisy): ${others.join(', ')}.` : ''),
    '',
    ...lines,
    '',
    ...(notes.length ? [`Wrong results, as measured: ${notes.join(' — ')}.`, ''] : []),
    'Goals, as this run computed them:',
    '',
    ...r.goals.map((g) => `- ${g.met === null ? 'not judged' : g.met ? 'met' : '**missed**'} — ${g.contender}: ${g.goal}: ${g.value}`),
  ].join('\n');
}
