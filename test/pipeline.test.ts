/**
 * The event pipeline's stages and policies with a fake bridge and a fake network stack (no Python,
 * no namespaces): coalescing, remove of a NIC whose config is gone, metadata that appears late or
 * never, a {run} policy, and a bridge that dies mid-batch.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pipeline } from '../src/pipeline/pipeline.js';
import { setQuiet } from '../src/util/log.js';
import { defaultConfig } from '../src/config.js';
import { ev, fakes, mac } from './helpers/fake-pipeline.js';
import { probeGapMs } from '../src/pipeline/await-metadata.js';

describe('pipeline (fake bridge and stack)', () => {
  before(() => setQuiet(true));
  after(() => setQuiet(false));

  it('an add whose MAC metadata lists: one crawl, render, bring up only it, routes, record, ack', async () => {
    const f = fakes();
    f.cloud.list('eth0', 0).list('eth1', 1);
    f.links.add('eth0').add('eth1');
    f.queue.events.push(ev('add', 'eth1', 1));
    expect(await new Pipeline(f.deps).drainOnce()).to.equal('ok');
    expect(f.records.events.map((r) => [r.action, r.iface, r.result, r.crawls])).to.deep.equal([['add', 'eth1', 'configured', 1]]);
    expect(f.cloud.calls.filter((c) => c.startsWith('bringUp'))).to.deep.equal(['bringUp eth1']);
    expect(f.routing.calls).to.deep.equal(['reconcile complete=true']);
    expect(f.records.known.eth1).to.include({ mac: mac(1), deviceNumber: 1 });
    expect(f.queue.events).to.deep.equal([]);
  });

  it('coalesces: add then remove of one name is a remove only; remove then add of the same MAC is an add only', async () => {
    const f = fakes();
    f.cloud.list('eth0', 0).list('eth2', 2);
    f.links.add('eth0').add('eth2');
    f.records.known.eth1 = { mac: mac(1), addedAt: 1 };
    f.queue.events.push(ev('add', 'eth1', 1), ev('remove', 'eth1'), ev('remove', 'eth2', 2), ev('add', 'eth2', 2));
    expect(await new Pipeline(f.deps).drainOnce()).to.equal('ok');
    expect(f.records.events.map((r) => [r.action, r.iface, r.result])).to.deep.equal([
      ['remove', 'eth1', 'removed'],
      ['add', 'eth2', 'configured'],
    ]);
    expect(f.stack.calls).to.deep.equal(['scrub eth1']);
    expect(f.queue.events, 'superseded events are acked too').to.deep.equal([]);
    expect(f.queue.acked).to.have.length(4);
  });

  it('removes a NIC whose device and config are already gone: no bring-down, scrubbed, our routing removed, forgotten', async () => {
    const f = fakes();
    f.cloud.list('eth0', 0);
    f.links.add('eth0');
    f.records.known.eth3 = { mac: mac(3), addedAt: 1, deviceNumber: 3 };
    f.queue.events.push(ev('remove', 'eth3'));
    expect(await new Pipeline(f.deps).drainOnce()).to.equal('ok');
    expect(f.cloud.calls.some((c) => c.startsWith('bringDown'))).to.equal(false);
    expect(f.stack.calls).to.deep.equal(['scrub eth3']);
    expect(f.routing.calls).to.deep.equal(['removeInterface eth3', 'reconcile complete=true']);
    expect(f.records.events[0]).to.include({ action: 'remove', iface: 'eth3', mac: mac(3), result: 'removed' });
    expect(f.records.known).to.not.have.property('eth3');
  });

  it('awaits metadata that lists the MAC late: cheap probes, then one more crawl and the NIC is configured', async () => {
    const f = fakes();
    f.cloud.list('eth0', 0);
    f.cloud.late.set(mac(4), { name: 'eth4', device_number: 4, probes: 3 });
    f.links.add('eth0').add('eth4');
    f.queue.events.push(ev('add', 'eth4', 4));
    expect(await new Pipeline(f.deps).drainOnce()).to.equal('ok');
    const r = f.records.events[0]!;
    expect(r).to.include({ iface: 'eth4', result: 'configured', crawls: 2, probes: 3 });
  });

  it('probes a lagging MAC at an even pace (150 ms ± 10 %), not with full-jitter backoff: the wait after metadata appears is bounded by one gap', async () => {
    const f = fakes({ config: { retry: { budget_seconds: 60, initial_ms: 150, max_ms: 5000 } } });
    const gaps: number[] = [];
    f.deps.sleep = (ms) => (gaps.push(ms), Promise.resolve());
    f.cloud.list('eth0', 0);
    f.cloud.late.set(mac(4), { name: 'eth4', device_number: 4, probes: 12 });
    f.links.add('eth0').add('eth4');
    f.queue.events.push(ev('add', 'eth4', 4));
    expect(await new Pipeline(f.deps).drainOnce()).to.equal('ok');
    expect(f.records.events[0]).to.include({ iface: 'eth4', result: 'configured', probes: 12 });
    expect(gaps).to.have.length(12);
    for (const g of gaps) expect(g).to.be.within(135, 165);
    expect(probeGapMs(5000, () => 0)).to.equal(135);
    expect(probeGapMs(5000, () => 1)).to.equal(165);
    expect(probeGapMs(20, () => 0.5), 'never longer than retry.max_ms').to.equal(20);
  });

  it('gives up on a MAC metadata never lists once its budget (from its kernel event) is spent: ignored, acked, batch failed', async () => {
    const f = fakes();
    f.cloud.list('eth0', 0);
    f.links.add('eth0').add('eth5');
    f.queue.events.push(ev('add', 'eth5', 5, { time: Date.now() - 300 }));
    const t0 = Date.now();
    expect(await new Pipeline(f.deps).drainOnce()).to.equal('failed');
    expect(Date.now() - t0).to.be.below(2000);
    expect(f.records.events[0]).to.include({ iface: 'eth5', result: 'ignored' });
    expect(f.records.events[0]!.reason).to.match(/not in metadata after 0.4s/);
    expect(f.cloud.calls.filter((c) => c === 'applyNetwork')).to.deep.equal([]);
    expect(f.queue.events).to.deep.equal([]);
  });

  it('runs a {run} policy with the event in its environment instead of configuring', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hp-pipe-run-'));
    try {
      const script = join(dir, 'hook.sh');
      writeFileSync(script, `#!/bin/sh\necho "$HOTPLUG_EVENT $HOTPLUG_IFACE $HOTPLUG_MAC" > ${join(dir, 'out')}\n`);
      chmodSync(script, 0o755);
      const f = fakes({ config: { events: { ...defaultConfig.events, add: { run: [script] } } } });
      f.cloud.list('eth0', 0).list('eth6', 6);
      f.queue.events.push(ev('add', 'eth6', 6));
      expect(await new Pipeline(f.deps).drainOnce()).to.equal('ok');
      expect(readFileSync(join(dir, 'out'), 'utf8').trim()).to.equal(`add eth6 ${mac(6)}`);
      expect(f.records.events[0]).to.include({ iface: 'eth6', result: 'configured' });
      expect(f.records.events[0]!.reason).to.match(/^events\.add policy: .*hook\.sh exited 0/);
      expect(f.cloud.calls.some((c) => c === 'applyNetwork' || c.startsWith('bringUp'))).to.equal(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ignore and reconcile policies, and filtered names, never configure', async () => {
    const f = fakes({ config: { events: { ...defaultConfig.events, add: 'reconcile', remove: 'ignore' } } });
    f.cloud.list('eth0', 0).list('eth7', 7);
    f.queue.events.push(ev('add', 'eth7', 7), ev('remove', 'eth8'), ev('add', 'docker0', 9));
    expect(await new Pipeline(f.deps).drainOnce()).to.equal('ok');
    expect(f.records.events.map((r) => [r.iface, r.result])).to.deep.equal([['eth7', 'configured'], ['eth8', 'ignored'], ['docker0', 'ignored']]);
    expect(f.routing.calls).to.deep.equal(['reconcile complete=false']);
    expect(f.cloud.calls.some((c) => c === 'applyNetwork')).to.equal(false);
  });

  it('a bridge that dies mid-batch: restarted, the batch re-run with what is still queued (nothing acked before handling)', async () => {
    const f = fakes({ dieOn: 'applyNetwork' });
    f.cloud.list('eth0', 0).list('eth1', 1);
    f.links.add('eth0').add('eth1');
    const e = ev('add', 'eth1', 1);
    f.queue.events.push(e);
    const restarts: string[] = [];
    f.deps.onBridgeRestart = (i) => restarts.push(`${i.what}: ${i.kind}, queued ${f.queue.events.length}`);
    expect(await new Pipeline(f.deps).drainOnce()).to.equal('ok');
    expect(restarts, 'the event was still queued when the bridge died').to.deep.equal(['batch: BridgeDead, queued 1']);
    expect(f.access.starts).to.equal(2);
    expect(f.cloud.calls.filter((c) => c === 'applyNetwork')).to.have.length(2);
    expect(f.records.events.map((r) => r.result)).to.deep.equal(['configured']);
    expect(f.queue.acked).to.deep.equal([e.id]);
  });

  it('a bridge that keeps dying: the error propagates and the events stay queued', async () => {
    const f = fakes();
    f.cloud.list('eth0', 0).list('eth1', 1);
    f.links.add('eth1');
    f.deps.bridge = { withBridge: async () => Promise.reject(Object.assign(new Error('python bridge process exited'), { kind: 'BridgeDead' })) };
    f.queue.events.push(ev('add', 'eth1', 1));
    const err = await new Pipeline(f.deps).drainOnce().catch((x: Error) => x);
    expect(err).to.be.instanceOf(Error);
    expect(f.queue.events).to.have.length(1);
    expect(f.records.events).to.deep.equal([]);
  });

  it('hotplug disabled by cloud-init: every event recorded as skipped and acked, nothing configured', async () => {
    const f = fakes();
    f.cloud.list('eth1', 1);
    const summary = f.cloud.summary.bind(f.cloud);
    f.cloud.summary = () => ({ ...summary(), hotplug: { enabled: false, reason: 'not in updates.network.when' } });
    f.queue.events.push(ev('add', 'eth1', 1));
    expect(await new Pipeline(f.deps).drainOnce()).to.equal('ok');
    expect(f.records.events[0]).to.include({ result: 'skipped' });
    expect(f.records.events[0]!.reason).to.match(/disabled by cloud-init/);
    expect(f.queue.events).to.deep.equal([]);
  });
});
