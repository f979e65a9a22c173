/**
 * The generated tables: README.md, docs/reliability.md and docs/vm.md must hold exactly what
 * `npm run report` writes from the committed results files (a hand edit fails here), and the
 * generators say where every figure came from, dirty trees and missing files included.
 */
import { expect } from 'chai';
import { mkdtemp, mkdir, rm, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rendered, blocks, DOCS } from '../scripts/results/report.js';
import { fillBlocks, blockNames } from '../scripts/results/markers.js';
import { REPO } from '../scripts/results/record.js';

describe('generated tables (npm run report)', () => {
  it('README.md and docs hold exactly what npm run report writes from the latest results files', () => {
    const stale = rendered()
      .filter((d) => d.current !== d.wanted)
      .map((d) => {
        const [a, b] = [d.current.split('\n'), d.wanted.split('\n')];
        const i = a.findIndex((l, k) => l !== b[k]);
        return `${d.file}:${i + 1}: has ${JSON.stringify(a[i])}, the results say ${JSON.stringify(b[i])}`;
      });
    expect(stale, 'run `npm run report` and commit (never edit a generated table by hand)').to.deep.equal([]);
  });

  it('every generated block is present: stacks, performance (EC2 and OpenStack) and reliability in the README, reliability in docs/reliability.md, vm in docs/vm.md', () => {
    const names = Object.fromEntries(rendered().map((d) => [d.file, blockNames(d.current)]));
    expect(names).to.deep.equal({ 'README.md': ['stacks', 'performance', 'performance-openstack', 'reliability'], 'docs/reliability.md': ['reliability'], 'docs/vm.md': ['vm'] });
  });

  it('a marker without a generator or without its end is an error, not stale text kept', () => {
    expect(() => fillBlocks('a\n<!-- report:nope -->\nx\n<!-- /report:nope -->\n', {}, 'f')).to.throw(/no generator for <!-- report:nope -->/);
    expect(() => fillBlocks('<!-- report:vm -->\nx\n', { vm: 'y' }, 'f')).to.throw(/has no <!-- \/report:vm -->/);
    expect(fillBlocks('a\n<!-- report:vm -->\nold\n<!-- /report:vm -->\nb\n', { vm: 'new' })).to.equal('a\n<!-- report:vm -->\nnew\n<!-- /report:vm -->\nb\n');
  });

  describe('from results files in a scratch tree', () => {
    let root: string;
    before(async () => {
      root = await mkdtemp(join(tmpdir(), 'hp-report-'));
      await mkdir(join(root, 'docs'));
      for (const f of DOCS) await cp(join(REPO, f), join(root, f));
    });
    after(() => rm(root, { recursive: true, force: true }));

    it('without results files every table says "not measured yet"', () => {
      const b = blocks(root);
      expect(b.performance).to.match(/^Not measured yet: no `bench\/results\/latest\.json`/);
      expect(b.reliability).to.match(/^Not measured yet: no `test\/results\/reliability-latest\.json`/);
      expect(b.vm).to.match(/ifupdown: not measured yet/).and.match(/netplan: not measured yet/).and.match(/nm: not measured yet/);
      expect(b.stacks).to.include('| NetworkManager | network-manager / NetworkManagerActivator | not measured yet (no `test/results/lab-network-manager-latest.json`) | not measured yet (no `test/results/vm-nm-latest.json`) |');
    });

    it('the table of stacks: a lab stack suite\'s results file gives its cell and its source; a failed check is named', async () => {
      await mkdir(join(root, 'test/results'), { recursive: true });
      const run = { commit: 'fedcba9876543210', clean: true, dirty: [], startedAt: '2026-12-02T09:00:00.000Z', finishedAt: '2026-12-02T09:01:00.000Z', machine: { cores: 2, cpuModel: 'x', loadavgBefore: [1, 1, 1], loadavgAfter: [1, 1, 1] } };
      const checks = [{ title: 'hot-add', state: 'passed' }, { title: 'hot-remove', state: 'failed', error: 'x' }];
      await writeFile(join(root, 'test/results/lab-network-manager-latest.json'), JSON.stringify({ schema: 1, kind: 'lab-stack', stack: 'network-manager', run, checks, goals: [] }));
      const t = blocks(root).stacks;
      expect(t).to.include('| NetworkManager | network-manager / NetworkManagerActivator | 1/2 checks passed (2026-12-02, commit fedcba987654) |');
      expect(t).to.include('- lab network-manager: From `test/results/lab-network-manager-latest.json`: run of 2026-12-02 09:00 UTC, commit fedcba987654, clean tree');
      expect(t).to.include('Not passed: lab network-manager: failed: hot-remove.');
      await rm(join(root, 'test/results/lab-network-manager-latest.json'));
    });

    it('a flavour run on a Nova cloud: its own column in the VM table and a cell after EC2\'s in the stacks table', async () => {
      await mkdir(join(root, 'test/results'), { recursive: true });
      const run = { commit: 'fedcba9876543210', clean: true, dirty: [], startedAt: '2026-12-02T09:00:00.000Z', finishedAt: '2026-12-02T09:05:00.000Z', machine: { cores: 2, cpuModel: 'x', loadavgBefore: [1, 1, 1], loadavgAfter: [1, 1, 1] } };
      const checks = [{ title: 'boot', state: 'passed' }, { title: 'hot-add', state: 'passed' }];
      const file = 'test/results/vm-ifupdown-configdrive-latest.json';
      await writeFile(join(root, file), JSON.stringify({ schema: 1, kind: 'vm', flavour: 'ifupdown-configdrive', run, timings: { boot_s: 90, ignored_record_after_attach_s: 3.2 }, checks, goals: [] }));
      const b = blocks(root);
      expect(b.vm).to.include('| step | ifupdown | netplan | networkd | nm | ifupdown-openstack | ifupdown-configdrive |');
      expect(b.vm).to.include('| QEMU start → cloud-init finished (s) | not measured yet | not measured yet | not measured yet | not measured yet | not measured yet | 90 |');
      expect(b.vm).to.match(/\| configdrive: `device_add` of a NIC the drive does not list → its `ignored` record \(s\) \|( not measured yet \|){5} 3\.2 \|/);
      expect(b.stacks).to.include('| ifupdown + dhclient | eni / IfUpDownActivator | the lab\'s default: every lab suite runs on it | not measured yet (no `test/results/vm-ifupdown-latest.json`); on configdrive: 2/2 checks passed (2026-12-02, commit fedcba987654) |');
      expect(b.stacks).to.include(`- VM ifupdown on configdrive: From \`${file}\`: run of 2026-12-02 09:00 UTC`);
      await rm(join(root, file));
    });

    it('a reliability run on a dirty tree is labelled so; a lost figure nobody computed shows "not measured"; missing areas too', async () => {
      await mkdir(join(root, 'test/results'), { recursive: true });
      const run = { commit: 'abcdef0123456789', clean: false, dirty: [' M x'], startedAt: '2026-12-01T10:00:00.000Z', finishedAt: '2026-12-01T10:05:00.000Z', machine: { cores: 2, cpuModel: 'x', loadavgBefore: [1.5, 1, 1], loadavgAfter: [2.5, 1, 1] } };
      const area = (lost: number | null, state: 'passed' | 'failed') => ({ what: 'w', events: 3, faults: 2, crashes: 0, rejected: 1, lost, seconds: 10, at: run.startedAt, checks: [{ title: 't', state }] });
      await writeFile(join(root, 'test/results/reliability-latest.json'), JSON.stringify({ schema: 1, kind: 'reliability', run, areas: { faults: area(1, 'failed'), 'hostile-unit': area(null, 'passed') }, goals: [] }));
      const t = blocks(root).reliability;
      expect(t).to.include('From `test/results/reliability-latest.json`: run of 2026-12-01 10:00 UTC, commit abcdef012345, **dirty tree**');
      expect(t).to.include('load average 1.5 → 2.5, 300 s');
      expect(t).to.match(/\| faults \| w \| 3 \| 2 \| 0 \| 1 \| 1 \| 0\/1 \*\*\(1 not passed\)\*\* \| 10 \|/);
      expect(t).to.match(/\| hostile-unit \| w \| 3 \| 2 \| 0 \| 1 \| not measured \| 1\/1 \| 10 \|/);
      expect(t).to.match(/\| storm \| not run in this run .*\| not measured \|/);
      expect(t).to.match(/\| \*\*total\*\* \| \| 6 \| 4 \| 0 \| 2 \| \*\*1\*\* \(5 areas not measured\) \| 1\/2 \| 20 \|/);
      expect(t).to.include('Not passed in this run: faults: failed: t.');
    });
  });
});
