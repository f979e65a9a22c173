/**
 * Reliability: ten `hotplug apply` started at once while udev events arrive. Every holder of the
 * apply lock logs when it took and released it (src/lock.ts): the held intervals never overlap
 * (serialized, never interleaved), every apply succeeds or says clearly that the lock was busy,
 * the events are handled (none stuck in the queue behind a manual apply), the final state equals
 * metadata.
 */
import { expect } from 'chai';
import { lab, hotplug, waitFor, labFixture } from './helpers.js';
import { converge, logLines, relLab } from '../support/harness.js';
import { integrity } from '../support/state.js';
import { recordFigures, recordChecks } from '../support/figures.js';
import { Tally } from '../support/tally.js';

const fx = labFixture(relLab('t-rel-conc'), { mode: 'faithful', install: true, config: 'retry:\n  budget_seconds: 20\n' });
const name = fx.name;
const APPLIES = 10;

interface Held {
  pid: number;
  cmd: string;
  from: number;
  to: number;
}

/** Lock intervals from the log's "lock acquired/released" lines, per holder. */
function heldIntervals(lines: string[]): { held: Held[]; open: string[] } {
  const open = new Map<number, { cmd: string; from: number }>();
  const held: Held[] = [];
  for (const l of lines) {
    const m = /^hotplug\[(\d+)\] info: lock (acquired|released) t=(\d+)(?: held_ms=\d+)? cmd=(\S+)/.exec(l);
    if (!m) continue;
    const pid = Number(m[1]);
    if (m[2] === 'acquired') open.set(pid, { cmd: m[4]!, from: Number(m[3]) });
    else {
      const o = open.get(pid);
      if (o) held.push({ pid, cmd: o.cmd, from: o.from, to: Number(m[3]) });
      open.delete(pid);
    }
  }
  return { held, open: [...open.entries()].map(([pid, o]) => `${o.cmd}[${pid}] since ${o.from}`) };
}

describe('reliability: concurrent applies and events', function () {
  this.timeout(600_000);
  fx.hooks();
  after(function () {
    recordChecks('concurrency', this.test?.parent);
  });

  it(`${APPLIES} hotplug apply at once plus udev events → serialized, all succeed or report the lock clearly, nothing stuck, final state correct`, async () => {
    const before = (await logLines(lab, name)).length;
    const applies = Array.from({ length: APPLIES }, () => hotplug(name, ['apply']));
    // Events while an apply holds the lock and the others queue up on it: the hook sees the lock
    // taken and starts no worker, so whoever releases it must look at the queue.
    await waitFor('an apply holding the lock', async () => (await logLines(lab, name)).slice(before).some((l) => / lock acquired .*cmd=apply/.test(l)), 120_000, 100);
    const nics = [await lab.attach({ name, ips: 1 })];
    await new Promise((r) => setTimeout(r, 1500));
    nics.push(...(await lab.attachMany(2, { name })));
    const results = await Promise.all(applies);
    const bad = results
      .map((r, i) => ({ i, r }))
      .filter(({ r }) => r.exitCode !== 0 && !/^hotplug: another cloud-hotplug run holds \S+ \(waited \d+ ms\)$/m.test(r.stderr))
      .map(({ i, r }) => `apply ${i}: exit ${r.exitCode}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    const c = await converge(lab, name, { timeoutMs: 180_000, known: false });
    const { held, open } = heldIntervals((await logLines(lab, name)).slice(before));
    held.sort((a, b) => a.from - b.from);
    const overlaps: string[] = [];
    for (let i = 1; i < held.length; i++) {
      const p = held[i - 1]!;
      const q = held[i]!;
      if (q.from < p.to) overlaps.push(`${p.cmd}[${p.pid}] ${p.from}-${p.to} overlaps ${q.cmd}[${q.pid}] ${q.from}-${q.to}`);
    }
    const ok = results.filter((r) => r.exitCode === 0).length;
    process.stderr.write(
      `      ${ok}/${APPLIES} applies succeeded; lock held ${held.length} times (${held.filter((h) => h.cmd === 'apply').length} by apply, ${held.filter((h) => h.cmd === 'worker').length} by workers)\n`,
    );
    // every NIC attached is an event whose effect the convergence check looks for
    const fig = new Tally();
    for (const n of nics) fig.event(n.ifname);
    fig.settle(c);
    recordFigures('concurrency', {
      what: `${APPLIES} concurrent hotplug apply + ${nics.length} udev events; lock intervals disjoint`,
      events: nics.length + APPLIES,
      faults: 0,
      crashes: 0,
      rejected: 0,
      lost: fig.lost,
      seconds: (Date.now() - fx.bootedAt) / 1000,
    });
    expect(bad, 'applies that failed without a clear lock report').to.deep.equal([]);
    expect(overlaps, 'interleaved lock holders').to.deep.equal([]);
    expect(open, 'holders that never released (none may be left)').to.deep.equal([]);
    expect(held.filter((h) => h.cmd === 'apply').length, 'every successful apply held the lock').to.be.at.least(ok);
    expect(c.diffs, 'final state vs metadata').to.deep.equal([]);
    expect(integrity(c.snap)).to.deep.equal([]);
  });
});
