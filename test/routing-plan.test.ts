/**
 * routing/plan: the changes from the system as it is to what metadata wants, checked over a model of
 * the kernel (order, idempotence, ownership, partial metadata, removals, the primary) and the report
 * rows.
 */
import { expect } from 'chai';
import { desiredState, allRules, allRoutes } from '../src/routing/desired.js';
import { plan, planDetailed } from '../src/routing/plan.js';
import { changeArgv, type Change } from '../src/routing/change.js';
import { emptyState, validateState, ROUTING_PROTO } from '../src/routing/state.js';
import { compareRows } from '../src/routing/report.js';
import { MAC0, MAC1, MAC2, nic, baseNics, input, dhcpActual, simulate, ownedAfter, reconciledOnce, del, add } from './helpers/routing-fixtures.js';

describe('routing/reconcile plan', () => {
  it('from a fresh DHCP system: adds addresses, then routes (subnet before default), then the main-table rule, then the per-NIC rules', () => {
    const d = desiredState(input());
    const cs = plan(d, dhcpActual(), emptyState());
    expect(del(cs)).to.deep.equal([]);
    expect(cs.map((c) => `${c.kind} ${c.op}`)).to.deep.equal([
      ...Array(4).fill('address add'),
      ...Array(4).fill('route add'),
      ...Array(12).fill('rule add'),
    ]);
    // Ahead of the tables before any of their rules exists: main's more specific routes are never captured.
    expect(changeArgv(cs.find((c) => c.kind === 'rule')!)).to.deep.equal(['-4', 'rule', 'add', 'from', 'all', 'lookup', '254', 'suppress_prefixlength', '0', 'priority', '9999', 'protocol', '199']);
    const routes = cs.filter((c) => c.kind === 'route').map(changeArgv);
    expect(routes[0]).to.deep.equal(['-4', 'route', 'add', '10.0.1.0/24', 'dev', 'eth1', 'table', '10001', 'proto', '199', 'scope', 'link']);
    expect(routes[3]).to.deep.equal(['-4', 'route', 'add', 'default', 'via', '10.0.2.1', 'dev', 'eth2', 'table', '10002', 'proto', '199']);
    expect(changeArgv(cs.filter((c) => c.kind === 'rule')[1]!)).to.deep.equal(['-4', 'rule', 'add', 'from', '10.0.1.10/32', 'lookup', '10001', 'priority', '10001', 'protocol', '199']);
    expect(changeArgv(cs[0]!)).to.deep.equal(['-4', 'addr', 'add', '10.0.1.11/24', 'dev', 'eth1', 'noprefixroute']);
  });

  it('is idempotent: planning again after applying gives nothing', () => {
    const d = desiredState(input());
    const a0 = dhcpActual();
    const cs = plan(d, a0, emptyState());
    const a1 = simulate(a0, cs);
    const owned = ownedAfter(emptyState(), d, a1, cs);
    expect(plan(d, a1, owned)).to.deep.equal([]);
    expect(owned.nics[MAC1]).to.deep.include({ ifname: 'eth1', table: 10001, addresses: [{ family: 4, address: '10.0.1.11', prefixlen: 24 }, { family: 4, address: '10.0.1.12', prefixlen: 24 }] });
    expect(owned.nics[MAC1]!.rules).to.deep.equal(['4 10.0.1.10/32', '4 10.0.1.11/32', '4 10.0.1.12/32', '4 10.0.1.64/28', '4 10.0.1.0/24']);
  });

  it('never touches foreign rules, routes or addresses; a foreign equivalent satisfies desired', () => {
    const d = desiredState(input());
    const a = dhcpActual();
    a.rules.push(
      { family: 4, priority: 500, from: '10.0.1.11/32', table: 100, protocol: 0, extra: false }, // user's own policy
      { family: 4, priority: 10002, from: '10.0.2.10/32', table: 10002, protocol: 0, extra: false }, // same as ours, by hand
      { family: 4, priority: 10001, from: '10.0.1.99/32', table: 10001, protocol: 0, extra: false }, // in our table, not in metadata
      { family: 4, priority: 10001, from: 'all', table: 10001, protocol: ROUTING_PROTO, extra: true }, // proto 199 but with fwmark: not ours
    );
    a.routes.push({ family: 4, table: 10002, dst: 'default', gateway: '10.0.2.254', dev: 'eth2', protocol: 4, plain: true });
    a.addresses.push({ family: 4, dev: 'eth2', address: '10.0.2.77', prefixlen: 24 });
    const r = planDetailed(d, a, emptyState(), { metadataComplete: true });
    expect(del(r.changes)).to.deep.equal([]);
    expect(r.changes.filter((c) => c.kind === 'rule').map((c) => (c as Extract<Change, { kind: 'rule' }>).rule.from)).to.not.include('10.0.2.10/32');
    expect(r.changes.some((c) => c.kind === 'route' && c.route.table === 10002 && c.route.dst === 'default')).to.equal(false);
    expect(r.notes.map((n) => n.reason).join('\n')).to.match(/foreign/).and.match(/already has a foreign route to default/);
  });

  it('partial metadata never deletes: metadataComplete=false keeps everything of present NICs', () => {
    const full = desiredState(input());
    const a1 = simulate(dhcpActual(), plan(full, dhcpActual(), emptyState()));
    const owned = ownedAfter(emptyState(), full, a1, plan(full, dhcpActual(), emptyState()));
    // A failed read: eth1 shows no secondary IPs and eth2 no addresses at all.
    const nics = baseNics();
    nics[MAC1]!.ipv4s = ['10.0.1.10'];
    nics[MAC2]!.ipv4s = [];
    const partial = desiredState(input({ nics }));
    const r = planDetailed(partial, a1, owned, { metadataComplete: false });
    expect(del(r.changes)).to.deep.equal([]);
    expect(r.notes.filter((n) => /kept: metadata read incomplete/.test(n.reason)).length).to.be.greaterThan(0);
    // The same data marked complete would delete them.
    expect(del(plan(partial, a1, owned, { metadataComplete: true })).length).to.be.greaterThan(0);
  });

  it('a present NIC missing from metadata keeps all it has, even with metadataComplete', () => {
    const { a1, owned } = reconciledOnce();
    const nics = baseNics();
    delete nics[MAC2];
    const r = planDetailed(desiredState(input({ nics })), a1, owned, { metadataComplete: true });
    expect(r.changes).to.deep.equal([]);
    expect(r.notes.some((n) => n.mac === MAC2 && /missing from metadata/.test(n.reason))).to.equal(true);
  });

  it('removing one secondary IP deletes only its rule and its address', () => {
    const { a1, owned } = reconciledOnce();
    const nics = baseNics();
    nics[MAC1]!.ipv4s = ['10.0.1.10', '10.0.1.11'];
    const out = plan(desiredState(input({ nics })), a1, owned);
    expect(out.map(changeArgv)).to.deep.equal([
      ['-4', 'rule', 'del', 'from', '10.0.1.12/32', 'lookup', '10001', 'priority', '10001', 'protocol', '199'],
      ['-4', 'addr', 'del', '10.0.1.12/24', 'dev', 'eth1'],
    ]);
    expect(out.every((c) => c.reason === 'no longer in metadata')).to.equal(true);
  });

  it("the primary's secondary addresses: added (after its DHCP address), recorded with no table, removed when metadata drops them", () => {
    const nics = baseNics();
    nics[MAC0]!.ipv4s = ['10.0.0.10', '10.0.0.11', '10.0.0.12'];
    const d = desiredState(input({ nics }));
    expect(d.primaryAddresses?.addresses.map((a) => `${a.dev} ${a.address}/${a.prefixlen}`)).to.deep.equal(['eth0 10.0.0.11/24', 'eth0 10.0.0.12/24']);
    // Still no table, rules or routes for it.
    expect(d.nics.some((n) => n.mac === MAC0)).to.equal(false);
    expect(allRules(d).some((r) => r.from.startsWith('10.0.0.'))).to.equal(false);
    expect(allRoutes(d).some((r) => r.dev === 'eth0')).to.equal(false);
    // Not before the DHCP address is there.
    const noDhcp = dhcpActual();
    noDhcp.addresses = noDhcp.addresses.filter((x) => x.dev !== 'eth0');
    const early = planDetailed(d, noDhcp, emptyState(), { metadataComplete: true });
    expect(early.changes.some((c) => c.ifname === 'eth0')).to.equal(false);
    expect(early.notes.some((n) => /waiting for the primary address 10\.0\.0\.10/.test(n.reason))).to.equal(true);
    const cs = plan(d, dhcpActual(), emptyState());
    expect(cs.filter((c) => c.ifname === 'eth0').map(changeArgv)).to.deep.equal([
      ['-4', 'addr', 'add', '10.0.0.11/24', 'dev', 'eth0', 'noprefixroute'],
      ['-4', 'addr', 'add', '10.0.0.12/24', 'dev', 'eth0', 'noprefixroute'],
    ]);
    const a1 = simulate(dhcpActual(), cs);
    const owned = validateState(JSON.parse(JSON.stringify(ownedAfter(emptyState(), d, a1, cs))));
    expect(owned.nics[MAC0]).to.deep.include({ ifname: 'eth0', table: 0, rules: [] });
    expect(owned.nics[MAC0]!.addresses.map((a) => a.address)).to.deep.equal(['10.0.0.11', '10.0.0.12']);
    expect(plan(d, a1, owned)).to.deep.equal([]);
    nics[MAC0]!.ipv4s = ['10.0.0.10', '10.0.0.12'];
    const out = plan(desiredState(input({ nics })), a1, owned);
    expect(out.map(changeArgv)).to.deep.equal([['-4', 'addr', 'del', '10.0.0.11/24', 'dev', 'eth0']]);
    expect(out[0]!.reason).to.equal('no longer in metadata');
  });

  it("adopts the secondary addresses cloud-init rendered (static aliases), so they go when metadata drops them; never others", () => {
    const d = desiredState(input());
    // As after ifup of cloud-init's ENI: eth1's secondaries are there (with a prefix route), plus a user's own address.
    const a = dhcpActual();
    a.addresses.push(
      { family: 4, dev: 'eth1', address: '10.0.1.11', prefixlen: 24 },
      { family: 4, dev: 'eth1', address: '10.0.1.12', prefixlen: 24 },
      { family: 4, dev: 'eth1', address: '10.0.1.200', prefixlen: 24 },
    );
    const cs = plan(d, a, emptyState());
    expect(cs.some((c) => c.kind === 'address' && c.ifname === 'eth1')).to.equal(false);
    const a1 = simulate(a, cs);
    const owned = ownedAfter(emptyState(), d, a1, cs);
    expect(owned.nics[MAC1]!.addresses.map((x) => x.address)).to.deep.equal(['10.0.1.11', '10.0.1.12']);
    const nics = baseNics();
    nics[MAC1]!.ipv4s = ['10.0.1.10', '10.0.1.11'];
    const out = plan(desiredState(input({ nics })), a1, owned);
    expect(out.map(changeArgv)).to.deep.equal([
      ['-4', 'rule', 'del', 'from', '10.0.1.12/32', 'lookup', '10001', 'priority', '10001', 'protocol', '199'],
      ['-4', 'addr', 'del', '10.0.1.12/24', 'dev', 'eth1'],
    ]);
    // The user's address is never ours, whatever metadata says later.
    expect(JSON.stringify(owned)).to.not.include('10.0.1.200');
  });

  it('a NIC whose metadata lacks its addresses (a crawl that skipped a leaf) is incomplete: nothing of it is deleted', () => {
    const { a1, owned } = reconciledOnce();
    for (const o of [{ ipv4s: [] }, { ipv4s: [], ipv6s: [], subnet_ipv4_cidr: null }]) {
      const nics = baseNics();
      Object.assign(nics[MAC2]!, o);
      const d = desiredState(input({ nics }));
      expect(d.incomplete).to.include(MAC2);
      const r = planDetailed(d, a1, owned, { metadataComplete: true });
      expect(r.changes.filter((c) => c.mac === MAC2)).to.deep.equal([]);
      expect(d.skipped.some((k) => k.mac === MAC2 && /partial metadata/.test(k.reason))).to.equal(true);
    }
    // Its rules and routes stay; the other NICs are untouched.
    expect(plan(desiredState(input()), a1, owned)).to.deep.equal([]);
  });

  it('a NIC that is gone loses its rules (routes and addresses went with the device)', () => {
    const { a1: a0, owned } = reconciledOnce();
    const a1 = { ...a0, links: a0.links.filter((l) => l.ifname !== 'eth2'), routes: a0.routes.filter((r) => r.dev !== 'eth2'), addresses: a0.addresses.filter((x) => x.dev !== 'eth2') };
    const nics = baseNics();
    delete nics[MAC2];
    // Even a partial read may clean up after a device that no longer exists.
    const out = plan(desiredState(input({ nics, links: a1.links })), a1, owned, { metadataComplete: false });
    expect(out.map((c) => `${c.kind} ${c.op} ${c.mac} ${c.reason}`)).to.deep.equal(Array(5).fill(`rule del ${MAC2} NIC gone`)); // 3 sources, 2 cross-subnet rules
  });

  it('a new lease gateway replaces our default route in place', () => {
    const { a1, owned } = reconciledOnce();
    const out = plan(desiredState(input({ gateways: { eth1: '10.0.1.254' } })), a1, owned);
    expect(out.map(changeArgv)).to.deep.equal([['-4', 'route', 'replace', 'default', 'via', '10.0.1.254', 'dev', 'eth1', 'table', '10001', 'proto', '199']]);
  });

  it('waits for the DHCP address before adding secondaries, and skips routes on a down link', () => {
    const a = dhcpActual();
    a.addresses = a.addresses.filter((x) => x.dev !== 'eth2');
    a.links = a.links.map((l) => (l.ifname === 'eth1' ? { ...l, up: false } : l));
    const r = planDetailed(desiredState(input({ links: a.links })), a, emptyState(), { metadataComplete: true });
    expect(r.changes.filter((c) => c.kind === 'address').map((c) => c.ifname)).to.deep.equal(['eth1', 'eth1']);
    expect(r.changes.filter((c) => c.kind === 'route').map((c) => c.ifname)).to.deep.equal(['eth2', 'eth2']);
    expect(r.changes.filter((c) => c.kind === 'rule').length).to.equal(12);
    expect(r.notes.map((n) => n.reason).join('\n')).to.match(/waiting for the primary address 10\.0\.2\.10/).and.match(/eth1 is down/);
  });

  it('when a NIC becomes the primary, its rules and routes go; its secondary addresses stay (metadata still assigns them)', () => {
    const { a1, owned } = reconciledOnce();
    const out = plan(desiredState(input({ config: { table_base: 10000, primary: 'eth1' } })), a1, owned);
    const dels = del(out);
    expect(dels.every((c) => c.mac === MAC1 && /primary/.test(c.reason))).to.equal(true);
    expect(dels.map((c) => c.kind).sort()).to.deep.equal(['route', 'route', 'rule', 'rule', 'rule', 'rule', 'rule', 'rule']); // 4 sources, 2 cross-subnet rules
    expect(add(out).every((c) => c.ifname === 'eth0')).to.equal(true);
  });

  it('no IPv6 changes when the kernel has no IPv6', () => {
    const nics = baseNics();
    nics[MAC1] = nic(MAC1, 1, { ipv6s: ['2600:1f14:aa:1::10', '2600:1f14:aa:1::11'], subnet_ipv6_cidrs: ['2600:1f14:aa:1::/64'] });
    const d = desiredState(input({ nics, gateways6: { eth1: 'fe80::1' } }));
    expect(plan(d, dhcpActual(), emptyState()).some((c) => changeArgv(c)[0] === '-6')).to.equal(true);
    expect(plan(d, { ...dhcpActual(), ipv6: false }, emptyState()).some((c) => changeArgv(c)[0] === '-6')).to.equal(false);
  });

  it('IPv6 address adds carry nodad and noprefixroute', () => {
    const nics = baseNics();
    nics[MAC1] = nic(MAC1, 1, { ipv6s: ['2600:1f14:aa:1::10', '2600:1f14:aa:1::11'], subnet_ipv6_cidrs: ['2600:1f14:aa:1::/64'] });
    const cs = plan(desiredState(input({ nics })), dhcpActual(), emptyState());
    expect(cs.map(changeArgv)).to.deep.include(['-6', 'addr', 'add', '2600:1f14:aa:1::11/64', 'dev', 'eth1', 'noprefixroute', 'nodad']);
    expect(cs.map(changeArgv)).to.deep.include(['-6', 'rule', 'add', 'from', '2600:1f14:aa:1::10/128', 'lookup', '10001', 'priority', '10001', 'protocol', '199']);
  });

  it('report rows: ok, missing, extra and foreign', () => {
    const full = desiredState(input());
    const cs = plan(full, dhcpActual(), emptyState());
    const a1 = simulate(dhcpActual(), cs);
    a1.rules.push({ family: 4, priority: 500, from: '10.0.1.11/32', table: 100, protocol: 0, extra: false });
    const owned = ownedAfter(emptyState(), full, a1, cs);
    const nics = baseNics();
    nics[MAC1]!.ipv4s = ['10.0.1.10', '10.0.1.11'];
    const d = desiredState(input({ nics }));
    const rows = compareRows({ desired: d, actual: a1, owned, plan: planDetailed(d, a1, owned, { metadataComplete: true }) });
    const find = (t: string) => rows.find((r) => r.text === t);
    expect(find('from 10.0.1.10/32 lookup 10001 priority 10001')).to.include({ status: 'ok', owner: 'ours' });
    expect(find('from 10.0.1.12/32 lookup 10001 priority 10001')).to.include({ status: 'extra', owner: 'ours', note: 'to remove: no longer in metadata' });
    expect(find('from 10.0.1.11/32 lookup 100 priority 500')).to.include({ status: 'foreign' });
    expect(find('10.0.1.10/24 dev eth1')).to.include({ status: 'foreign' });
    expect(find('10.0.1.12/24 dev eth1')).to.include({ status: 'extra' });
  });
});
