/**
 * The verdict on issue 16 goal 4 as written (PSS ≤ 60 MB after 10 minutes idle): judged on the
 * last sample of the long-idle lab (bench/long-idle.ts), only when it was taken 10 minutes in.
 */
import { expect } from 'chai';
import { longIdleGoal } from '../bench/summary.js';
import type { LongIdle } from '../bench/long-idle.js';
import type { BenchResult } from '../bench/result.js';
import { performanceTable } from '../scripts/results/bench-tables.js';

const run = (samples: Array<[number, number]>, extra: Partial<LongIdle> = {}): LongIdle => ({
  minutes: 10,
  lab: 'b-idle',
  samples: samples.map(([s, pssMb]) => ({ s, pssMb, rssMb: pssMb + 30, pssByComm: { node: pssMb - 32, python3: 32 } })),
  ...extra,
});

describe('bench: the 10-minute idle PSS goal', () => {
  it('met or missed on the last sample, at 10 minutes or later; the maximum and RSS shown beside', () => {
    const ok = longIdleGoal(run([[0, 53], [60, 58.5], [600, 54.2]]));
    expect(ok.met).to.equal(true);
    expect(ok.value).to.equal('PSS 54.2 MB after 10 min (max 58.5 over 3 samples, one a minute); RSS 84.2 MB');
    expect(longIdleGoal(run([[0, 53], [602, 60.1]])).met).to.equal(false);
  });

  it('no verdict when the last sample came before 10 minutes, nothing was sampled, or the run had no long-idle lab', () => {
    expect(longIdleGoal(run([[0, 50], [540, 50]])).met).to.equal(null);
    expect(longIdleGoal(run([], { error: 'hotplug daemon: not ready after 30 s' }))).to.include({ met: null, value: 'not measured: hotplug daemon: not ready after 30 s' });
    expect(longIdleGoal(null)).to.include({ met: null, value: 'not measured' });
  });

  it("the README's table shows the long-idle lab's first and last sample in the daemon's column, and no row without that lab", () => {
    const res = (longIdle: LongIdle | null) =>
      ({
        run: { commit: 'a'.repeat(40), clean: true, dirty: [], startedAt: '2026-12-04T00:00:00Z', finishedAt: '2026-12-04T00:10:00Z', machine: { cores: 2 } },
        durationS: 600,
        options: { cloud: 'ec2' },
        machine: {},
        labs: [],
        longIdle,
        summary: [],
        goals: [],
      }) as unknown as BenchResult;
    const table = performanceTable('bench/results/latest.json', res(run([[0, 53], [300, 58.5], [600, 54.2]])));
    expect(table).to.include('| idle PSS / RSS, daemon idle 10 min in a lab of its own (first → last sample) | — | — | 53 → 54.2 MB / 83 → 84.2 MB |');
    expect(performanceTable('bench/results/latest.json', res(null))).not.to.include('daemon idle');
  });
});
