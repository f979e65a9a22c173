/**
 * Figures of the reliability suite: each area's test file records what it did (events handled,
 * faults injected, crashes survived, inputs rejected, anything lost) into one JSON file, and
 * `node dist/test/support/figures.js` prints the table for docs/reliability.md from it.
 * File: $RELIABILITY_FIGURES, default /tmp/cloud-hotplug-reliability.json.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface AreaFigures {
  /** What the area tests, one line. */
  what: string;
  events: number;
  faults: number;
  crashes: number;
  rejected: number;
  lost: number;
  seconds: number;
  /** e.g. the storm's seed. */
  notes?: string;
  at?: string;
}

export const figuresFile = (): string => process.env.RELIABILITY_FIGURES || '/tmp/cloud-hotplug-reliability.json';

export function readFigures(file = figuresFile()): Record<string, AreaFigures> {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, AreaFigures>) : {};
  } catch {
    return {};
  }
}

/** Merge one area's figures into the file (atomic replace; areas run one after another). */
export function recordFigures(area: string, f: AreaFigures, file = figuresFile()): void {
  const all = readFigures(file);
  all[area] = { ...f, at: new Date().toISOString() };
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(all, null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, file);
}

export function renderTable(all: Record<string, AreaFigures>): string {
  const rows = Object.entries(all).sort(([a], [b]) => a.localeCompare(b));
  const tot = { events: 0, faults: 0, crashes: 0, rejected: 0, lost: 0, seconds: 0 };
  const lines = [
    '| area | what is tested | events handled | faults injected | crashes survived | inputs rejected | lost | time (s) |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [area, f] of rows) {
    lines.push(`| ${area} | ${f.what}${f.notes ? ` (${f.notes})` : ''} | ${f.events} | ${f.faults} | ${f.crashes} | ${f.rejected} | ${f.lost} | ${Math.round(f.seconds)} |`);
    for (const k of Object.keys(tot) as (keyof typeof tot)[]) tot[k] += f[k];
  }
  lines.push(`| **total** | | ${tot.events} | ${tot.faults} | ${tot.crashes} | ${tot.rejected} | **${tot.lost}** | ${Math.round(tot.seconds)} |`);
  return lines.join('\n') + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(renderTable(readFigures(process.argv[2] || figuresFile())));
}
