/**
 * Reliability: a randomized storm of NIC attach/detach events (real udevd, real cloud-init),
 * with random timing and random metadata lag, over a few device slots whose numbers (and so
 * interface names) are reused with new MACs. At the end, with the queue drained and no worker
 * running, the instance's state equals what metadata says, exactly.
 *
 *   STORM_SEED=N     replay a storm (the seed is printed)
 *   STORM_EVENTS=N   attach/detach operations (default 200)
 *   STORM_SLOTS=N    device slots 1..N (default 8)
 */
import { expect } from 'chai';
import { lab, labFixture } from './helpers.js';
import { converge, prng, unhookedEvents, logLines, eventRecords, relLab } from '../support/harness.js';
import { integrity, orphanDhcpClients } from '../support/state.js';
import { recordFigures, recordChecks } from '../support/figures.js';

const fx = labFixture(relLab('t-rel-storm'), { mode: 'faithful', install: true, config: 'retry:\n  budget_seconds: 20\n' });
const name = fx.name;
const EVENTS = Number(process.env.STORM_EVENTS || 200);
const SLOTS = Number(process.env.STORM_SLOTS || 8);
const SEED = process.env.STORM_SEED ? Number(process.env.STORM_SEED) : Math.floor(Math.random() * 2 ** 31);

describe('reliability: randomized attach/detach storm', function () {
  this.timeout(900_000);
  // REL_KEEP_LAB=1 leaves the lab up to look at a failed storm (take it down with `lab down`).
  fx.hooks({ keep: () => !!process.env.REL_KEEP_LAB });
  after(function () {
    recordChecks('storm', this.test?.parent);
  });

  it(`${EVENTS} attach/detach events over ${SLOTS} slots with random timing and 0-1.5 s metadata lag → state equals metadata`, async () => {
    expect(Number.isInteger(EVENTS) && EVENTS > 0, 'STORM_EVENTS').to.equal(true);
    expect(Number.isInteger(SLOTS) && SLOTS > 0 && SLOTS < 64, 'STORM_SLOTS').to.equal(true);
    // Printed first so a failure can be replayed.
    process.stderr.write(`      storm seed: ${SEED} (replay: STORM_SEED=${SEED} STORM_EVENTS=${EVENTS} STORM_SLOTS=${SLOTS})\n`);
    const rnd = prng(SEED);
    const attached = new Map<number, string>();
    let attaches = 0;
    let detaches = 0;
    let lastVisible = 0;
    const tStorm = Date.now();
    for (let i = 0; i < EVENTS; i++) {
      const slot = 1 + Math.floor(rnd() * SLOTS);
      const lag = rnd() < 0.35 ? 0 : Math.round(rnd() * 15) / 10;
      const ips = rnd() < 0.3 ? 1 : 0;
      const gap = rnd() < 0.3 ? 0 : Math.round(rnd() * 500);
      const ifname = attached.get(slot);
      if (ifname) {
        await lab.detach(ifname, { name });
        attached.delete(slot);
        detaches++;
      } else {
        const nic = await lab.attach({ name, deviceNumber: slot, lagSeconds: lag, ips });
        attached.set(slot, nic.ifname);
        lastVisible = Math.max(lastVisible, nic.visibleAt ?? 0);
        attaches++;
      }
      if (gap) await new Promise((r) => setTimeout(r, gap));
    }
    const stormMs = Date.now() - tStorm;
    // Every lagging NIC is visible in metadata before we judge.
    if (lastVisible > Date.now()) await new Promise((r) => setTimeout(r, lastVisible - Date.now() + 100));

    const c = await converge(lab, name, { timeoutMs: 300_000 });
    const hooks = await unhookedEvents(lab, name, (n) => /^eth[1-9]\d*$/.test(n));
    const recs = eventRecords(await logLines(lab, name)).filter((r) => r.iface !== 'eth0');
    const results: Record<string, number> = {};
    for (const r of recs) results[`${r.action} ${r.result}`] = (results[`${r.action} ${r.result}`] ?? 0) + 1;
    const badNics = new Set(c.expected.map((n) => n.ifname).filter((n) => c.diffs.some((d) => d.includes(`${n} `) || d.endsWith(n))));
    const lost = hooks.missing.length + (c.diffs.length ? Math.max(1, badNics.size) : 0);
    process.stderr.write(
      `      storm: ${attaches} attaches + ${detaches} detaches in ${(stormMs / 1000).toFixed(0)} s; udev delivered ${hooks.delivered}, hook queued ${hooks.hooked}; ` +
        `records ${JSON.stringify(results)}; drained ${(c.waitedMs / 1000).toFixed(1)} s after the last event; ${c.expected.length - 1} NICs at the end\n`,
    );
    recordFigures('storm', {
      what: `${EVENTS} random attach/detach over ${SLOTS} slots, lag 0-1.5 s; final state = metadata`,
      events: hooks.delivered,
      faults: 0,
      crashes: 0,
      rejected: 0,
      lost,
      seconds: (Date.now() - fx.bootedAt) / 1000,
      notes: `seed ${SEED}`,
    });
    expect(hooks.missing, `kernel events the hook never queued (seed ${SEED})`).to.deep.equal([]);
    expect(c.diffs, `instance state vs metadata (seed ${SEED})`).to.deep.equal([]);
    expect(integrity(c.snap), 'files whole').to.deep.equal([]);
    expect(orphanDhcpClients(c.snap), 'orphaned DHCP clients').to.deep.equal([]);
    expect(hooks.delivered, 'udev delivered every event').to.be.at.least(EVENTS);
  });
});
