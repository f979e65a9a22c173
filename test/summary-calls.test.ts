/**
 * Bridge round trips of the daemon's work, counted on a fake bridge behind the real BridgeManager:
 * `summary` calls per batch (the summary a reply already carried is reused, summary-memo.ts), and
 * crawls per metadata-only change (the poller's read is acted on unless obj.pkl changed since), and
 * none for routing repairs from cached metadata.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BridgeManager } from '../bridge/manager.js';
import { currentSummary, memoSummaries } from '../bridge/summary-memo.js';
import { BridgeError, type Bridge } from '../bridge/index.js';
import { Pipeline } from '../src/pipeline/pipeline.js';
import { MetadataPoller } from '../src/daemon/poller.js';
import { fingerprint } from '../src/daemon/fingerprint.js';
import type { PipelineDeps } from '../src/pipeline/deps.js';
import { linksChanged, repairRouting, type Exclusive } from '../src/pipeline/changes.js';
import { applyAll } from '../src/pipeline/apply-all.js';
import { setQuiet } from '../src/util/log.js';
import { ev, fakes, type Fakes } from './helpers/fake-pipeline.js';

describe('bridge round trips of the daemon (fake bridge, real BridgeManager)', () => {
  let dir: string;
  before(() => {
    setQuiet(true);
    dir = mkdtempSync(join(tmpdir(), 'hp-calls-'));
    writeFileSync(join(dir, 'obj.pkl'), 'x');
  });
  after(() => {
    setQuiet(false);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Fakes whose bridge is a BridgeManager over the fake cloud (with a probe that says "changed"). */
  function setup(): Fakes & { m: BridgeManager; deps: PipelineDeps; count: (c: string) => number } {
    const f = fakes();
    const m = new BridgeManager({
      factory: async () => {
        const b = f.cloud.bridge();
        b.probeNetwork = async () => (f.cloud.calls.push('probeNetwork'), { supported: true, changed: true, resource: 'x', requests: 1, not_modified: false, targets: 1 });
        return b;
      },
      objPkl: join(dir, 'obj.pkl'),
      open: (b, p) => b.open(p),
      procOf: async () => undefined,
    });
    const deps = { ...f.deps, bridge: m };
    return { ...f, m, deps, count: (c) => f.cloud.calls.filter((x) => x === c).length };
  }

  /** One batch as Daemon.drain runs it: the pipeline, then the poller's baseline (Daemon.acceptSummary). */
  async function daemonBatch(x: ReturnType<typeof setup>, poller: MetadataPoller): Promise<void> {
    expect(await new Pipeline(x.deps).drainOnce()).to.equal('ok');
    await x.m.withBridge('baseline', async (b) => poller.accept(await currentSummary(b)));
  }

  const poller = (deps: PipelineDeps, exclusive: Exclusive = (fn) => fn()) =>
    new MetadataPoller({ deps, exclusive, stopping: () => true, schedule: () => {}, queued: async () => false, drain: () => {}, emit: () => {} });

  it('a batch that adds a NIC, then one that removes it: no summary round trip (the open, crawl and rederive replies carry it), the baseline is current', async () => {
    const x = setup();
    x.cloud.list('eth0', 0).list('eth1', 1);
    x.links.add('eth0').add('eth1');
    const p = poller(x.deps);
    await x.m.get(); // the daemon's start: open
    x.queue.events.push(ev('add', 'eth1', 1));
    await daemonBatch(x, p);
    expect(x.records.events.map((r) => [r.iface, r.result])).to.deep.equal([['eth1', 'configured']]);
    expect(x.count('summary'), 'summary calls, add batch').to.equal(0);
    expect(p.baseline).to.equal(fingerprint(x.cloud.summary()));
    x.links.delete('eth1');
    x.cloud.nics.delete('02:00:00:00:00:01');
    x.queue.events.push(ev('remove', 'eth1', 1));
    await daemonBatch(x, p);
    expect(x.count('summary'), 'summary calls, remove batch').to.equal(0);
    expect(p.baseline).to.equal(fingerprint(x.cloud.summary()));
  });

  it('when a call the memo cannot vouch for came first, the batch makes exactly one summary round trip', async () => {
    const x = setup();
    x.cloud.list('eth0', 0).list('eth1', 1);
    x.links.add('eth0').add('eth1');
    const p = poller(x.deps);
    await x.m.withBridge('something else', (b) => b.setSources(null));
    x.queue.events.push(ev('add', 'eth1', 1));
    await daemonBatch(x, p);
    expect(x.count('summary')).to.equal(1);
  });

  it('a metadata-only change is crawled once (the poll); again under the lock only when obj.pkl changed since', async () => {
    for (const foreign of [false, true]) {
      const x = setup();
      x.cloud.list('eth0', 0);
      x.links.add('eth0');
      // Between the poll and the lock: another writer stores obj.pkl (the manager re-opens it).
      const exclusive: Exclusive = async (fn) => {
        if (foreign) utimesSync(join(dir, 'obj.pkl'), new Date(), new Date(Date.now() + 60_000 * x.count('open')));
        return fn();
      };
      const p = poller(x.deps, exclusive);
      await x.m.withBridge('start', async (b) => p.accept(await currentSummary(b)));
      x.cloud.list('eth2', 2); // in metadata, not on this system
      await p.pollOnce();
      expect(p.baseline, `accepted (foreign=${foreign})`).to.equal(fingerprint(x.cloud.summary()));
      expect(x.count('refreshNetwork'), `crawls (foreign=${foreign})`).to.equal(foreign ? 2 : 1);
      expect(x.m.reopens).to.equal(foreign ? 1 : 0);
      expect(x.routing.calls).to.deep.equal(['reconcile complete=true']);
    }
  });

  it('routing repair and a link-down reconcile (cached metadata) reuse the remembered summary: no round trip', async () => {
    const x = setup();
    x.cloud.list('eth0', 0);
    x.links.add('eth0');
    await x.m.get();
    await repairRouting(x.deps, (fn) => fn());
    const deps = { ...x.deps, config: () => ({ ...x.deps.config(), events: { ...x.deps.config().events, link_down: 'reconcile' as const } }) };
    const results: string[] = [];
    await linksChanged(deps, (fn) => fn(), [{ ifname: 'eth0', up: false }], (_i, _u, r) => results.push(r));
    expect(results).to.deep.equal(['reconciled']);
    expect(x.routing.calls).to.deep.equal(['reconcile complete=false', 'reconcile complete=false']);
    expect(x.count('summary')).to.equal(0);
  });

  it('hotplug apply without a refresh (cached metadata) reuses the remembered summary: no round trip', async () => {
    const x = setup();
    x.cloud.list('eth0', 0);
    x.links.add('eth0');
    await x.m.get(); // open: its reply carries the summary
    const r = await x.m.withBridge('apply', (b) => applyAll(x.deps, b, { refresh: false, dryRun: false }));
    expect(r.refreshed).to.equal(false);
    expect(x.count('networkConfig')).to.equal(1);
    expect(x.count('summary')).to.equal(0);
    expect(x.routing.calls).to.deep.equal(['reconcile complete=true']);
  });

  it('the memo: replies with a summary are remembered, calls that keep the datasource keep it, other or failed calls forget it', async () => {
    const x = setup();
    x.cloud.list('eth0', 0);
    const b = memoSummaries(x.cloud.bridge());
    expect(b.knownSummary()).to.equal(undefined);
    const r = await b.refreshNetwork();
    expect(b.knownSummary()).to.equal((r as { summary: unknown }).summary);
    await b.bringUp(['eth0']);
    expect(b.knownSummary()).to.equal((r as { summary: unknown }).summary);
    await b.networkConfig(); // reads the cached config: keeps it
    expect(b.knownSummary()).to.equal((r as { summary: unknown }).summary);
    await b.setSources(null);
    expect(b.knownSummary()).to.equal(undefined);
    await b.summary();
    expect(b.knownSummary()).to.not.equal(undefined);
    const dying = memoSummaries({ ...x.cloud.bridge(), bringUp: async () => Promise.reject(new BridgeError('stuck', 'BridgeTimeout')) } as Bridge);
    await dying.summary();
    await dying.bringUp(['eth0']).catch(() => {});
    expect(dying.knownSummary(), 'after a failed call').to.equal(undefined);
    expect(await currentSummary(x.cloud.bridge())).to.deep.equal(x.cloud.summary());
  });
});
