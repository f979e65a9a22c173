/**
 * The reliability table (README and docs/reliability.md), from test/results/reliability-latest.json:
 * one row per area the run recorded, figures as the tests computed them; an area the run did
 * not cover, or a figure a test could not compute, says "not measured".
 */
import type { ReliabilityResults } from '../../test/support/figures.js';
import { fromRun, provenance } from './provenance.js';

/** The areas of the suite, in table order, with the file that covers each. */
export const AREAS: [string, string][] = [
  ['storm', 'test/integration/reliability-storm.test.ts'],
  ['faults', 'test/integration/reliability-faults.test.ts'],
  ['crash', 'test/integration/reliability-crash.test.ts'],
  ['concurrency', 'test/integration/reliability-concurrency.test.ts'],
  ['hostile', 'test/integration/reliability-hostile.test.ts'],
  ['hostile-unit', 'test/hostile.test.ts'],
];

const NM = 'not measured';

export function reliabilityTable(file: string, r: ReliabilityResults): string {
  const lines = [
    '| area | what is tested | events handled | faults injected | crashes survived | inputs rejected | lost | checks passed | time (s) |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const tot = { events: 0, faults: 0, crashes: 0, rejected: 0, lost: 0, seconds: 0, passed: 0, checks: 0 };
  let lostUnknown = 0;
  const names = [...AREAS.map(([a]) => a), ...Object.keys(r.areas).filter((a) => !AREAS.some(([x]) => x === a)).sort()];
  for (const area of names) {
    const a = r.areas[area];
    if (!a) {
      lines.push(`| ${area} | not run in this run (\`${AREAS.find(([x]) => x === area)?.[1] ?? '?'}\`) | ${NM} | ${NM} | ${NM} | ${NM} | ${NM} | ${NM} | ${NM} |`);
      lostUnknown++;
      continue;
    }
    const passed = a.checks.filter((c) => c.state === 'passed').length;
    const failed = a.checks.filter((c) => c.state !== 'passed').map((c) => `${c.state}: ${c.title}`);
    const checks = a.checks.length ? `${passed}/${a.checks.length}${failed.length ? ' **(' + failed.length + ' not passed)**' : ''}` : NM;
    lines.push(`| ${area} | ${a.what}${a.notes ? ` (${a.notes})` : ''} | ${a.events} | ${a.faults} | ${a.crashes} | ${a.rejected} | ${a.lost ?? NM} | ${checks} | ${Math.round(a.seconds)} |`);
    tot.events += a.events;
    tot.faults += a.faults;
    tot.crashes += a.crashes;
    tot.rejected += a.rejected;
    tot.seconds += a.seconds;
    tot.passed += passed;
    tot.checks += a.checks.length;
    if (a.lost === null) lostUnknown++;
    else tot.lost += a.lost;
  }
  const lost = `**${tot.lost}**${lostUnknown ? ` (${lostUnknown} area${lostUnknown === 1 ? '' : 's'} ${NM})` : ''}`;
  lines.push(`| **total** | | ${tot.events} | ${tot.faults} | ${tot.crashes} | ${tot.rejected} | ${lost} | ${tot.passed}/${tot.checks} | ${Math.round(tot.seconds)} |`);
  const failing = Object.entries(r.areas).flatMap(([area, a]) => a.checks.filter((c) => c.state !== 'passed').map((c) => `${area}: ${c.state}: ${c.title}`));
  return [provenance(fromRun(file, r.run)), '', ...lines, ...(failing.length ? ['', `Not passed in this run: ${failing.join('; ')}.`] : [])].join('\n');
}
