/**
 * IPv6 routes of a hot-added NIC wait for its router advertisement: which NICs are waiting
 * (routing/ra-wait), polling `ip` until the RA route is there, and the routes stage's second
 * reconcile once it is.
 */
import { expect } from 'chai';
import { awaitingRouter6, waitRouters6 } from '../src/routing/ra-wait.js';
import { NO_ROUTER6 } from '../src/routing/spec.js';
import type { IpRunner } from '../src/routing/run.js';
import { routesStage } from '../src/pipeline/routes.js';
import { newContext } from '../src/pipeline/context.js';
import type { InstanceSummary } from '../bridge/index.js';
import { fakes } from './helpers/fake-pipeline.js';

const LINKS = [{ ifindex: 3, ifname: 'eth1', flags: ['UP'], address: '0a:00:00:00:00:01', addr_info: [] }];
const RA = { dst: 'default', gateway: 'fe80::1', dev: 'eth1', protocol: '9', metric: 1024, flags: [], metrics: [{ hoplimit: 64 }], pref: 'medium' };

/** A fake `ip`: eth1 exists; the RA route shows from the `raAfter`-th read of the IPv6 routes on. */
function fakeIp(raAfter: number, links = LINKS): IpRunner & { reads: number } {
  const f = Object.assign(
    async (args: readonly string[]) => {
      const a = args.join(' ');
      if (a.includes('-6 route show')) f.reads++;
      const out = a.includes('addr show') ? links : a.includes('-6 route show') && f.reads >= raAfter ? [RA] : [];
      return { exitCode: 0, stdout: JSON.stringify(out), stderr: '' };
    },
    { reads: 0 },
  );
  return f;
}

describe('IPv6 routes wait for a router advertisement', () => {
  it('awaitingRouter6: only NICs skipped for want of an RA', () => {
    expect(
      awaitingRouter6([
        { ifname: 'eth2', what: 'ipv6 routes', value: 'null', reason: NO_ROUTER6 },
        { ifname: 'eth1', what: 'ipv6 routes', value: 'null', reason: NO_ROUTER6 },
        { ifname: 'eth3', what: 'ipv6 routes', value: 'x', reason: 'default router is not a unicast IPv6 address' },
        { ifname: 'eth4', what: 'ipv6s[1]', value: 'x', reason: 'not an IPv6 address' },
      ]),
    ).to.deep.equal(['eth1', 'eth2']);
  });

  it('waitRouters6: polls until the RA route is there; a NIC that is gone is not waited for', async () => {
    const ip = fakeIp(3);
    expect(await waitRouters6(['eth1', 'eth9'], ip, 5000, 1)).to.deep.equal([]);
    expect(ip.reads).to.equal(3);
  });

  it('waitRouters6: gives up after its time with the NICs still without a router', async () => {
    expect(await waitRouters6(['eth1'], fakeIp(Infinity), 30, 5)).to.deep.equal(['eth1']);
  });

  it('the routes stage reconciles again once the RA came, and not when none is awaited', async () => {
    const f = fakes();
    let waiting = ['eth1'];
    const asked: string[][] = [];
    f.routing.reconcile = async () => (f.routing.calls.push('reconcile'), { changes: 1, failed: 0, awaitingRouter6: waiting.splice(0) });
    f.routing.waitRouters6 = async (n) => (asked.push(n), []);
    const ctx = newContext(f.deps, { works: true });
    await routesStage(ctx, {} as InstanceSummary, true);
    expect(asked).to.deep.equal([['eth1']]);
    expect(f.routing.calls).to.deep.equal(['reconcile', 'reconcile']);
    f.routing.calls.length = 0;
    await routesStage(ctx, {} as InstanceSummary, true);
    expect(f.routing.calls).to.deep.equal(['reconcile']);
  });

  it('no second reconcile when the wait ran out', async () => {
    const f = fakes();
    f.routing.reconcile = async () => (f.routing.calls.push('reconcile'), { changes: 0, failed: 0, awaitingRouter6: ['eth1'] });
    f.routing.waitRouters6 = async (n) => n;
    await routesStage(newContext(f.deps, { works: true }), {} as InstanceSummary, true);
    expect(f.routing.calls).to.deep.equal(['reconcile']);
  });
});
