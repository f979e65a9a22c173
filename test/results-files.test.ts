/**
 * Results files (scripts/results/record.ts, test/support/tally.ts, the VM suite's writer): a run
 * says which commit and whether the tree was clean, "lost" is computed from what was observed,
 * and a failing VM check is written down rather than lost.
 */
import { expect } from 'chai';
import { mkdtemp, rm, writeFile, readFile, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Mocha from 'mocha';
import { startRun, writeResults } from '../scripts/results/record.js';
import { Tally, mentions } from './support/tally.js';
import { writeVmResults, type VmResults } from './integration/vm/results.js';

describe('results files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hp-results-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('startRun: commit and clean tree; any change makes it dirty, except the results directory being written', async () => {
    const git = (...a: string[]) => execFileSync('git', ['-C', dir, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    git('init', '-q');
    await writeFile(join(dir, 'a'), '1\n');
    git('add', 'a');
    git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'x');
    const head = git('rev-parse', 'HEAD');
    const r0 = startRun(['res'], dir);
    expect(r0).to.include({ commit: head, clean: true });
    expect(r0.machine.cores).to.be.greaterThan(0);
    expect(r0.machine.loadavgBefore).to.have.length(3);
    await mkdir(join(dir, 'res'));
    await writeFile(join(dir, 'res/latest.json'), '{}');
    expect(startRun(['res'], dir).clean, 'a results file being written').to.equal(true);
    await writeFile(join(dir, 'a'), '2\n');
    const r1 = startRun(['res'], dir);
    expect(r1.clean).to.equal(false);
    expect(r1.dirty).to.deep.equal([' M a']);
  });

  it('writeResults: the dated file and the latest copy, identical', async () => {
    const f = writeResults(dir, 'x-1.json', { a: 1 }, 'x-latest.json');
    expect(await readFile(f, 'utf8')).to.equal(await readFile(join(dir, 'x-latest.json'), 'utf8'));
    expect(JSON.parse(await readFile(f, 'utf8'))).to.deep.equal({ a: 1 });
  });

  it('Tally: an event is lost when the check after it finds its NIC wrong; an unchecked event leaves lost not measured', () => {
    const t = new Tally();
    t.event('eth1');
    t.event('eth10');
    t.settle({ diffs: ['addresses: missing eth10 10.0.2.5/24'] });
    expect(t.lost).to.equal(1);
    t.event('eth2');
    t.settle({ diffs: ['ENI does not parse: x'] });
    expect(t.lost, 'a difference naming no NIC still loses one').to.equal(2);
    t.event('eth3');
    expect(t.lost).to.equal(null);
    expect(t.unchecked).to.equal(1);
    t.fault(0);
    t.fault(3);
    t.reject(false);
    t.reject(true, 2);
    expect([t.events, t.faults, t.rejected]).to.deep.equal([4, 1, 2]);
    expect(mentions('ifstate.eth1: content "x"', 'eth1')).to.equal(true);
    expect(mentions('eth10 10.0.2.5/24', 'eth1')).to.equal(false);
  });

  it('the VM suite writes its file with a failing check recorded, and nothing when every test was skipped', () => {
    const suite = new Mocha.Suite('vm');
    const ok = new Mocha.Test('boots', () => {});
    ok.state = 'passed';
    const bad = new Mocha.Test('hot-plug', () => {});
    bad.state = 'failed';
    (bad as Mocha.Test & { err?: Error }).err = new Error('no address\nmore');
    const never = new Mocha.Test('purge', () => {});
    [ok, bad, never].forEach((t) => suite.addTest(t));
    const run = startRun();
    const f = writeVmResults('ifupdown', run, { boot_s: 80.5 }, suite, dir);
    expect(f).to.match(/vm-ifupdown-.*\.json$/);
    return readFile(join(dir, 'vm-ifupdown-latest.json'), 'utf8').then((text) => {
      const r = JSON.parse(text) as VmResults;
      expect(r.timings).to.deep.equal({ boot_s: 80.5 });
      expect(r.checks).to.deep.equal([
        { title: 'boots', state: 'passed' },
        { title: 'hot-plug', state: 'failed', error: 'no address' },
        { title: 'purge', state: 'not run' },
      ]);
      expect(r.goals).to.deep.equal([{ goal: 'every check passed', value: '1/3 passed', met: false }]);
      expect(r.run.finishedAt).to.be.a('string');
      const skipped = new Mocha.Suite('vm');
      const s = new Mocha.Test('x');
      skipped.addTest(s);
      s.pending = true;
      expect(writeVmResults('netplan', run, {}, skipped, dir)).to.equal(null);
    });
  });
});
