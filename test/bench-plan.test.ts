/** The bench's job plan (bench/plan.ts): what each contender runs, on EC2 and on a cloud where upstream's hook fails every event. */
import { expect } from 'chai';
import { plan, SCENARIO_IDS, UPSTREAM_FAILS } from '../bench/plan.js';
import { CONTENDERS } from '../bench/contenders.js';

const ids = (jobs: ReturnType<typeof plan>, c: string) => jobs.filter((j) => j.contender.id === c).flatMap((j) => `${j.mode}:${j.run}:${j.scenarios.map((s) => s.id).join('+')}`);

describe('bench plan', () => {
  it('on EC2 upstream runs every generic scenario each run, and add1 alone on the faithful lab', () => {
    const jobs = plan({ runs: 2, modes: ['generic', 'faithful'], scenarios: SCENARIO_IDS }, CONTENDERS);
    const up = ids(jobs, 'upstream');
    expect(up).to.include('faithful:1:add1');
    expect(up.filter((x) => x.startsWith('generic:2:'))).to.not.be.empty;
    expect(up.some((x) => x.includes('nics16'))).to.equal(true);
  });

  it('where upstream fails every event it runs add1 once; ours run everything', () => {
    expect(UPSTREAM_FAILS.openstack).to.match(/Address already assigned/);
    const jobs = plan({ runs: 2, modes: ['generic'], scenarios: SCENARIO_IDS, upstreamFails: true }, CONTENDERS);
    expect(ids(jobs, 'upstream')).to.deep.equal(['generic:1:add1']);
    const daemon = ids(jobs, 'daemon');
    expect(daemon.some((x) => x.startsWith('generic:2:'))).to.equal(true);
    expect(daemon.join(' ')).to.include('nics16').and.include('churn').and.include('secip');
  });
});
