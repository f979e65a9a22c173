/**
 * The rule layout's pure parts: the main-table rule ahead of the per-NIC tables (desired, plan,
 * cleanup order), collisions with a user's tables and priorities, the state file's priorities,
 * and --explain's walk over `ip rule`.
 */
import { expect } from 'chai';
import { desiredState, mainRules } from '../src/routing/desired.js';
import { planDetailed, plan } from '../src/routing/plan.js';
import { changeArgv, ruleText } from '../src/routing/change.js';
import { parseRules } from '../src/routing/actual.js';
import { emptyState, validateState, ROUTING_PROTO } from '../src/routing/state.js';
import { findCollisions } from '../src/routing/collision.js';
import { explainRule, fibLength } from '../src/routing/explain.js';
import { compareRows } from '../src/routing/report.js';
import { MAC0, MAC1, MAC2, nic, baseNics, input, dhcpActual, simulate, ownedAfter, reconciledOnce, del } from './helpers/routing-fixtures.js';

const MAIN4 = { family: 4 as const, priority: 9999, from: 'all', table: 254, protocol: ROUTING_PROTO, extra: true, suppress: 0 };

describe('routing layout: the main-table rule ahead of the per-NIC tables', () => {
  it('desired: one per family some NIC has rules for, at table_base - 1; none without secondary NICs', () => {
    const d = desiredState(input());
    expect(d.mainRules).to.deep.equal([{ family: 4, from: 'all', table: 254, priority: 9999, suppressPrefixlength: 0 }]);
    const nics = baseNics();
    nics[MAC1] = nic(MAC1, 1, { ipv6s: ['2600:1f14:aa:1::10'], subnet_ipv6_cidrs: ['2600:1f14:aa:1::/64'] });
    expect(desiredState(input({ nics, config: { table_base: 20000, primary: null } })).mainRules.map((r) => `${r.family} ${r.priority}`)).to.deep.equal(['4 19999', '6 19999']);
    const only = desiredState(input({ nics: { [MAC0]: baseNics()[MAC0]! } }));
    expect(only.mainRules).to.deep.equal([]);
    expect(mainRules([], 10000)).to.deep.equal([]);
  });

  it('argv and text: `ip rule add from all lookup 254 suppress_prefixlength 0 priority 9999 protocol 199`', () => {
    const r = desiredState(input()).mainRules[0]!;
    expect(changeArgv({ kind: 'rule', op: 'add', rule: r, mac: null, ifname: null, reason: 'missing' })).to.deep.equal(['-4', 'rule', 'add', 'from', 'all', 'lookup', '254', 'suppress_prefixlength', '0', 'priority', '9999', 'protocol', '199']);
    expect(ruleText(r)).to.equal('from all lookup main suppress_prefixlength 0 priority 9999');
  });

  it('parse: suppress_prefixlen is recorded only on a rule with nothing else unusual', () => {
    const r = parseRules([
      { priority: 9999, src: 'all', table: '254', suppress_prefixlen: 0, protocol: '199' },
      { priority: 9998, src: 'all', table: '254', suppress_prefixlen: 0, fwmark: '0x1' },
    ], 4);
    expect(r[0]).to.deep.equal(MAIN4);
    expect(r[1]).to.not.have.property('suppress');
  });

  it('plan: kept while a per-NIC rule of ours stays; removed with the last one; a foreign twin satisfies it', () => {
    const { a1, owned } = reconciledOnce();
    expect(a1.rules).to.deep.include(MAIN4);
    // eth2 detached: eth1 still has a table, so the main-table rule stays.
    const l1 = a1.links.filter((l) => l.ifname !== 'eth2');
    const some = plan(desiredState(input({ links: l1 })), { ...a1, links: l1 }, owned);
    expect(del(some).length).to.be.greaterThan(0);
    expect(some.some((c) => c.kind === 'rule' && c.rule.from === 'all')).to.equal(false);
    // The secondary NICs detached: the same metadata minus them.
    const links = a1.links.filter((l) => l.ifname === 'eth0');
    const gone = desiredState(input({ nics: { [MAC0]: baseNics()[MAC0]! }, links }));
    const out = plan(gone, { ...a1, links }, owned);
    expect(del(out).filter((c) => c.kind === 'rule' && c.rule.from === 'all').map((c) => c.reason)).to.deep.equal(['no NIC has a table']);
    // With metadata partial nothing of ours goes, the main-table rule included.
    const partial = planDetailed(gone, a1, owned, { metadataComplete: false });
    expect(del(partial.changes)).to.deep.equal([]);
    // A foreign twin (NetworkManager's, say) at our priority: not added again, not a collision.
    const a = dhcpActual();
    a.rules.push({ ...MAIN4, protocol: 0 });
    const r = planDetailed(desiredState(input()), a, emptyState(), { metadataComplete: true });
    expect(r.changes.some((c) => c.kind === 'rule' && c.rule.from === 'all')).to.equal(false);
    expect(r.collisions).to.deep.equal([]);
  });

  it('plan: a main-table rule of ours at an old priority (table_base changed) is replaced', () => {
    const { a1, owned } = reconciledOnce();
    const d = desiredState(input({ config: { table_base: 20000, primary: null } }));
    const out = plan(d, a1, owned);
    const mains = out.filter((c) => c.kind === 'rule' && c.rule.from === 'all').map((c) => c.kind === 'rule' && `${c.op} ${c.rule.priority}`);
    expect(mains).to.deep.equal(['del 9999', 'add 19999']);
    const a2 = simulate(a1, out);
    expect(plan(d, a2, ownedAfter(owned, d, a2, out))).to.deep.equal([]);
  });

  it('state: priorities and main-table rules recorded; an old file without priorities reads them as the table', () => {
    const { owned } = reconciledOnce();
    expect(owned.mainRules).to.deep.equal(['4 9999']);
    expect(owned.nics[MAC1]).to.deep.include({ table: 10001, priority: 10001 });
    const old = validateState({ nics: { [MAC1]: { ifname: 'eth1', table: 10001, rules: [], addresses: [] } }, mainRules: ['4 9999', '7 1', 'x'] });
    expect(old.nics[MAC1]!.priority).to.equal(10001);
    expect(old.mainRules).to.deep.equal(['4 9999']);
  });

  it('report: the main-table rule is a row of ours, not a foreign rule "with other selectors"', () => {
    const { a1, owned } = reconciledOnce();
    const d = desiredState(input());
    const rows = compareRows({ desired: d, actual: a1, owned, plan: planDetailed(d, a1, owned, { metadataComplete: true }) });
    expect(rows.filter((r) => r.text.includes('suppress'))).to.deep.equal([{ kind: 'rule', family: 4, ifname: null, text: 'from all lookup main suppress_prefixlength 0 priority 9999', status: 'ok', owner: 'ours' }]);
  });
});

describe('routing layout: cross-subnet rules (a secondary NIC to another NIC’s subnet by its own table)', () => {
  it('one per other subnet (the primary’s included), at table_base - 2, IPv6 where the NIC has an IPv6 table', () => {
    const nics = baseNics();
    nics[MAC0] = nic(MAC0, 0, { ipv4s: ['10.0.0.10'], ipv6s: ['fd00::10'], subnet_ipv6_cidrs: ['fd00::/64'] });
    nics[MAC1] = nic(MAC1, 1, { ipv6s: ['fd00:1::10'], subnet_ipv6_cidrs: ['fd00:1::/64'] });
    const d = desiredState(input({ nics, gateways6: { eth1: 'fe80::1' } }));
    const cross = d.nics.flatMap((n) => n.rules.filter((r) => r.to !== undefined).map((r) => `${n.ifname} ${r.family} ${r.from} > ${r.to} ${r.table}/${r.priority}`));
    expect(cross).to.deep.equal([
      'eth1 4 10.0.1.0/24 > 10.0.0.0/24 10001/9998',
      'eth1 4 10.0.1.0/24 > 10.0.2.0/24 10001/9998',
      'eth1 6 fd00:1::/64 > fd00::/64 10001/9998',
      'eth2 4 10.0.2.0/24 > 10.0.0.0/24 10002/9998',
      'eth2 4 10.0.2.0/24 > 10.0.1.0/24 10002/9998',
    ]);
    const c = d.nics[0]!.rules.find((r) => r.to)!;
    expect(changeArgv({ kind: 'rule', op: 'add', rule: c, mac: null, ifname: null, reason: '' })).to.deep.equal(['-4', 'rule', 'add', 'from', '10.0.1.0/24', 'to', '10.0.0.0/24', 'lookup', '10001', 'priority', '9998', 'protocol', '199']);
  });

  it('none for NICs sharing a subnet (the subnet as source would take in the other’s addresses)', () => {
    const nics = baseNics();
    nics[MAC2] = nic(MAC2, 2, { ipv4s: ['10.0.1.20', '10.0.1.21'], subnet_ipv4_cidr: '10.0.1.0/24' });
    const d = desiredState(input({ nics }));
    expect(d.nics.flatMap((n) => n.rules.filter((r) => r.to !== undefined))).to.deep.equal([]);
  });

  it('parsed back as ours (a destination is not an "extra"); towards a NIC kept as it is, kept', () => {
    const [r] = parseRules([{ priority: 9998, src: '10.0.1.0', srclen: 24, dst: '10.0.2.0', dstlen: 24, table: '10001', protocol: '199' }], 4);
    expect(r).to.deep.equal({ family: 4, priority: 9998, from: '10.0.1.0/24', to: '10.0.2.0/24', table: 10001, protocol: 199, extra: false });
    const { a1, owned } = reconciledOnce();
    const nics = baseNics();
    delete nics[MAC2]; // eth2 still present, missing from metadata: kept as it is, and so is eth1's rule towards it
    const out = planDetailed(desiredState(input({ nics })), a1, owned, { metadataComplete: true });
    expect(del(out.changes)).to.deep.equal([]);
    expect(out.notes.some((n) => /subnet of a NIC kept as it is/.test(n.reason))).to.equal(true);
  });
});

describe('routing layout: collisions with a user’s tables and priorities', () => {
  it("a foreign route in our table: the NIC gets nothing and keeps what it has; reported", () => {
    const a = dhcpActual();
    a.routes.push({ family: 4, table: 10002, dst: '198.51.100.0/24', gateway: '10.0.0.1', dev: 'eth0', protocol: 3, plain: true });
    const r = planDetailed(desiredState(input()), a, emptyState(), { metadataComplete: true });
    expect(r.collisions.map((c) => [c.kind, c.number, c.ifname, c.found])).to.deep.equal([['table', 10002, 'eth2', '198.51.100.0/24 via 10.0.0.1 dev eth0 table 10002 proto 3']]);
    expect(r.changes.filter((c) => c.ifname === 'eth2')).to.deep.equal([]);
    expect(r.desired.nics.map((n) => n.ifname)).to.deep.equal(['eth1']);
    expect(r.notes.some((n) => /^collision: /.test(n.reason) && n.ifname === 'eth2')).to.equal(true);
  });

  it('a foreign rule at our priority looking elsewhere collides; one looking up our own table does not', () => {
    const a = dhcpActual();
    a.rules.push({ family: 4, priority: 10001, from: '10.9.9.9/32', table: 600, protocol: 0, extra: false });
    a.rules.push({ family: 4, priority: 10002, from: '10.0.2.99/32', table: 10002, protocol: 0, extra: false });
    const cs = findCollisions(desiredState(input()), a);
    expect(cs.map((c) => [c.kind, c.number, c.ifname])).to.deep.equal([['priority', 10001, 'eth1']]);
  });

  it("a foreign rule at the main-table rule's priority: that rule is not added; the NICs still are", () => {
    const a = dhcpActual();
    a.rules.push({ family: 4, priority: 9999, from: 'all', table: 700, protocol: 0, extra: false });
    const r = planDetailed(desiredState(input()), a, emptyState(), { metadataComplete: true });
    expect(r.collisions.map((c) => [c.kind, c.number, c.mac])).to.deep.equal([['priority', 9999, null]]);
    expect(r.changes.some((c) => c.kind === 'rule' && c.rule.from === 'all')).to.equal(false);
    expect(r.changes.filter((c) => c.kind === 'rule').length).to.equal(11);
  });

  it('our own routes and a twin of a desired route are not collisions', () => {
    const { a1 } = reconciledOnce();
    const a = structuredClone(a1);
    a.routes.push({ family: 4, table: 10001, dst: '10.0.1.0/24', dev: 'eth1', protocol: 4, plain: true });
    expect(findCollisions(desiredState(input()), a)).to.deep.equal([]);
  });
});

describe('routing layout: --explain walks ip rule like the kernel', () => {
  const RULES = [
    { priority: 0, src: 'all', table: '255' },
    { priority: 500, src: 'all', fwmark: '0x1', table: '100' },
    { priority: 9999, src: 'all', table: '254', suppress_prefixlen: 0, protocol: '199' },
    { priority: 10001, src: '10.0.1.10', table: '10001', protocol: '199' },
    { priority: 10001, src: '10.0.1.11', table: '10001', protocol: '199' },
    { priority: 20000, src: 'all', dst: '10.8.0.0', dstlen: 16, table: '300' },
    { priority: 32766, src: 'all', table: '254' },
    { priority: 32767, src: 'all', table: '253' },
  ];
  it('a more specific route in main: the main-table rule, nothing suppressed', () => {
    const e = explainRule(RULES, 4, '172.17.0.2', '10.0.1.11', 254, 16);
    expect(e.rule).to.include({ priority: 9999, table: 254, ours: true, text: 'from all lookup main suppress_prefixlength 0' });
    expect(e.passed.map((p) => p.rule.priority)).to.deep.equal([0]);
    expect(e.unevaluated.map((u) => u.priority)).to.deep.equal([500]);
  });
  it("main's default for a secondary source: suppressed, then the NIC's rule", () => {
    const e = explainRule(RULES, 4, '203.0.113.9', '10.0.1.11', 10001, 0);
    expect(e.rule).to.include({ priority: 10001, text: 'from 10.0.1.11 lookup 10001' });
    expect(e.passed.map((p) => [p.rule.priority, /suppress/.test(p.why)])).to.deep.equal([[0, false], [9999, true]]);
  });
  it('no source: only "from all" rules match; main by its default', () => {
    const e = explainRule(RULES, 4, '169.254.169.254', null, 254, 0);
    expect(e.rule).to.include({ priority: 32766, ours: false });
    expect(e.passed.map((p) => p.rule.priority)).to.deep.equal([0, 9999]);
  });
  it('a destination selector is honoured', () => {
    expect(explainRule(RULES, 4, '10.8.1.1', '10.0.0.10', 300, 16).rule).to.include({ priority: 20000, text: 'from all to 10.8.0.0/16 lookup 300' });
  });
  it('fib prefix lengths', () => {
    expect([fibLength('default', 4), fibLength('172.17.0.0/16', 4), fibLength('10.0.0.5', 4), fibLength('fd17::/64', 6)]).to.deep.equal([0, 16, 32, 64]);
  });
});
