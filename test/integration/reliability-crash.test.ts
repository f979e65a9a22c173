/**
 * Reliability: the worker (node) and its Python bridge child killed with -9 at random points of
 * handling an event, many times. After every kill: the kernel dropped the lock (nothing stuck),
 * every file is whole (obj.pkl unpickles, our JSON parses, the ENI parses). At checkpoints and at
 * the end, the following event converges the instance to metadata, with no orphaned DHCP client.
 *
 *   CRASH_COUNT=N  kills (default 15)    CRASH_SEED=N  replay (printed)
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { lab, waitFor, labFixture } from './helpers.js';
import { converge, prng, snapshot, relLab } from '../support/harness.js';
import { integrity, orphanDhcpClients } from '../support/state.js';
import { isPythonBridge, isWorker } from '../support/collect.js';
import { recordFigures, recordChecks } from '../support/figures.js';
import { Tally } from '../support/tally.js';

const fx = labFixture(relLab('t-rel-crash'), { mode: 'faithful', install: true, config: 'retry:\n  budget_seconds: 20\n' });
const name = fx.name;
const CRASHES = Number(process.env.CRASH_COUNT || 15);
const SEED = process.env.CRASH_SEED ? Number(process.env.CRASH_SEED) : Math.floor(Math.random() * 2 ** 31);
/** A convergence check after every this many kills (and at the end). */
const CHECK_EVERY = 5;

const ppidOf = (pid: number): number => {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
  } catch {
    return -1;
  }
};
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('reliability: kill -9 of the worker and its Python child mid-apply', function () {
  this.timeout(900_000);
  fx.hooks();
  after(function () {
    recordChecks('crash', this.test?.parent);
  });

  it(`${CRASHES} kills at random points → no stuck lock, files whole after each, every following event converges, no orphaned DHCP client`, async () => {
    process.stderr.write(`      crash seed: ${SEED} (replay: CRASH_SEED=${SEED} CRASH_COUNT=${CRASHES})\n`);
    const rnd = prng(SEED);
    const attached: string[] = [];
    let crashes = 0;
    let events = 0;
    /** Each event and whether the next convergence check found its effect. */
    const fig = new Tally();
    let missed = 0;
    let checks = 0;
    const tempSeen = new Set<string>();
    const problems: string[] = [];
    const kinds: Record<string, number> = {};
    for (let round = 0; crashes < CRASHES && round < CRASHES * 3; round++) {
      // One event per round: attach (up to 5 NICs) or detach.
      if (attached.length < 2 || (attached.length < 5 && rnd() < 0.6)) {
        const nic = await lab.attach({ name, ips: rnd() < 0.4 ? 1 : 0 });
        attached.push(nic.ifname);
        fig.event(nic.ifname);
      } else {
        const [ifname] = attached.splice(Math.floor(rnd() * attached.length), 1);
        await lab.detach(ifname!, { name });
        fig.event(ifname!);
      }
      events++;
      const delay = Math.round(rnd() * 2000);
      const what = (['worker', 'python', 'both'] as const)[Math.floor(rnd() * 3)]!;
      const worker = await waitFor('a worker', async () => (await snapshot(lab, name)).procs.find(isWorker), 20_000, 50).catch(() => undefined);
      if (!worker) {
        missed++;
        continue;
      }
      await new Promise((r) => setTimeout(r, delay));
      const procs = (await snapshot(lab, name)).procs;
      const py = procs.filter(isPythonBridge).find((p) => ppidOf(p.pid) === worker.pid);
      const targets = [...(what !== 'python' ? [worker.pid] : []), ...(what !== 'worker' && py ? [py.pid] : [])].filter(alive);
      if (!targets.length) {
        missed++; // it finished (or the Python child was not up yet) before the random point
        continue;
      }
      for (const pid of targets) process.kill(pid, 'SIGKILL');
      crashes++;
      const label = targets.length === 2 ? 'both' : targets[0] === worker.pid ? 'worker' : 'python';
      kinds[label] = (kinds[label] ?? 0) + 1;
      // The kernel drops the lock with its holder: free once the killed worker is gone.
      const s = await waitFor('lock released', async () => {
        const x = await snapshot(lab, name);
        return !x.lockHeld || x.procs.some((p) => isWorker(p) && p.pid !== worker.pid) ? x : null;
      }, 60_000, 100).catch(() => null);
      if (!s) {
        problems.push(`kill ${crashes} (${label} after ${delay} ms): lock still held with no live worker`);
        continue;
      }
      for (const p of integrity(s)) problems.push(`kill ${crashes} (${label} after ${delay} ms): ${p}`);
      s.tempFiles.forEach((f) => tempSeen.add(f));
      if (crashes % CHECK_EVERY === 0 && crashes < CRASHES) {
        // The next event (not killed) handles what the killed worker left queued, and converges.
        const nic = await lab.attach({ name });
        attached.push(nic.ifname);
        events++;
        fig.event(nic.ifname);
        const c = await converge(lab, name, { timeoutMs: 180_000 });
        fig.settle(c);
        checks++;
        for (const d of c.diffs) problems.push(`after kill ${crashes}: ${d}`);
        for (const o of orphanDhcpClients(c.snap)) problems.push(`after kill ${crashes}: orphaned DHCP client ${o}`);
      }
    }
    // The event after the last kill converges everything.
    const nic = await lab.attach({ name });
    attached.push(nic.ifname);
    events++;
    fig.event(nic.ifname);
    const c = await converge(lab, name, { timeoutMs: 180_000 });
    fig.settle(c);
    checks++;
    process.stderr.write(
      `      crashes: ${crashes} (${JSON.stringify(kinds)}), ${missed} rounds where the worker finished first, ${events} events, ${checks} convergence checks; temp files seen after kills: ${tempSeen.size}\n`,
    );
    recordFigures('crash', {
      what: 'kill -9 of worker and/or its Python child at random points; lock, files, convergence, DHCP clients',
      events,
      faults: 0,
      crashes,
      rejected: 0,
      // events whose effect a convergence check did not find (kill-time problems fail the test; they are not events)
      lost: fig.lost,
      seconds: (Date.now() - fx.bootedAt) / 1000,
      notes: `seed ${SEED}`,
    });
    expect(crashes, 'kills that landed').to.equal(CRASHES);
    expect(problems, `seed ${SEED}`).to.deep.equal([]);
    expect(c.diffs, `final state vs metadata (seed ${SEED})`).to.deep.equal([]);
    expect(integrity(c.snap)).to.deep.equal([]);
    expect(orphanDhcpClients(c.snap), 'orphaned DHCP clients').to.deep.equal([]);
    expect(c.snap.lockHeld, 'lock').to.equal(false);
  });
});
