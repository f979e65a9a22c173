/**
 * The bench's smoke run (`npm run bench -- --quick`): generic lab, one run, one NIC add and
 * remove per contender. Fails only on wrong results, never on slowness.
 */
import { expect } from 'chai';
import * as lab from '../../scripts/lab/index.js';
import { runBench, type BenchResult } from '../../bench/run.js';

describe('bench --quick (generic lab, one-NIC add/remove per contender)', function () {
  this.timeout(420_000);
  const prefix = 'b-qt';
  let res: BenchResult;

  before(async function () {
    res = await runBench({ quick: true, save: false, quiet: true, prefix });
  });

  after(async function () {
    const left = (await lab.listLabs()).filter((n) => n.startsWith(prefix + '-'));
    for (const n of left) await lab.down({ name: n, quiet: true });
    expect(left, 'labs left running by the bench').to.deep.equal([]);
  });

  it('describes the machine and every contender (available or why not)', () => {
    expect(res.machine.cores).to.be.a('number');
    expect(res.machine.cloudInit).to.match(/^22\.4/);
    expect(res.contenders.map((c) => c.id)).to.include.members(['upstream', 'oneshot', 'daemon']);
    for (const c of res.contenders) if (!c.available) expect(c.reason).to.be.a('string').and.not.empty;
    expect(res.labs.every((l) => !l.error), JSON.stringify(res.labs)).to.equal(true);
  });

  it('upstream (cloud-init 22.4.2 hook) configures one added NIC on the generic lab', () => {
    const m = res.measurements.find((x) => x.contender === 'upstream' && x.scenario === 'add1')!;
    expect(m.status, JSON.stringify(m)).to.equal('ok');
    expect(m.correct, m.problems.join('; ')).to.equal(true);
    expect(m.timeMs).to.be.greaterThan(0);
    expect(m.crawls).to.be.at.least(1);
    // its remove is reported as it is (22.4 leaves dhclient/ifstate behind), not asserted
    const r = res.measurements.find((x) => x.contender === 'upstream' && x.scenario === 'remove1')!;
    expect(r.correct).to.be.a('boolean');
  });

  for (const id of ['oneshot', 'daemon']) {
    it(`${id}: add and remove of one NIC give correct results (addresses, routes, nothing left)`, function () {
      const c = res.contenders.find((x) => x.id === id)!;
      if (!c.available) this.skip();
      for (const sc of ['add1', 'remove1']) {
        const m = res.measurements.find((x) => x.contender === id && x.scenario === sc)!;
        expect(m, `${id} ${sc} measured`).to.not.equal(undefined);
        expect(m.status, `${sc}: ${JSON.stringify(m)}`).to.equal('ok');
        expect(m.correct, `${sc}: ${m.problems.join('; ')}`).to.equal(true);
        expect(m.timeMs).to.be.greaterThan(0);
        expect(m.cpuS === null || m.cpuS >= 0).to.equal(true);
      }
      const add = res.measurements.find((x) => x.contender === id && x.scenario === 'add1')!;
      expect(add.crawls, 'one crawl for one NIC').to.equal(1);
      expect(add.hookMs?.n, 'hook lines with duration_ms').to.be.at.least(1);
    });
  }

  it('the verdict is ok (only wrong results fail it)', () => {
    expect(res.failures).to.deep.equal([]);
    expect(res.ok).to.equal(true);
  });
});
