import { expect } from 'chai';
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NicMeta } from '../bridge/index.js';
import { parseIp, parsePrefix, formatIPv6, notUnicast } from '../src/routing/addr.js';
import { desiredState, allRules, allRoutes, allAddresses, type DesiredInput, type LinkInfo } from '../src/routing/desired.js';
import { parseRules, parseRoutes, parseAddresses, parseLinks, mainDefaultVia, readGateways, type ActualState } from '../src/routing/actual.js';
import { plan, planDetailed } from '../src/routing/plan.js';
import { changeArgv, type Change } from '../src/routing/change.js';
import { applyPlan } from '../src/routing/apply.js';
import { nextState } from '../src/routing/next-state.js';
import { reconcile, snapshot } from '../src/routing/reconcile.js';
import { removeInterface, flushOwned } from '../src/routing/cleanup.js';
import { leaseRouter, dhclientLeaseGateway, defaultLeaseDir } from '../src/stack/dhclient-lease.js';
import { emptyState, validateState, ROUTING_PROTO, type OwnedState } from '../src/routing/state.js';
import { compareRows } from '../src/routing/report.js';
import type { IpRunner } from '../src/routing/run.js';
import { routesView, previewRoutes } from '../src/commands/routes.js';
import { defaultConfig } from '../src/config.js';
import { setQuiet } from '../src/util/log.js';

// ---------------------------------------------------------------------------------------
// Fixtures: a primary (eth0, one IP) and two secondary NICs with two secondary IPs each.

const MAC0 = '02:00:00:00:00:10';
const MAC1 = '02:00:00:00:00:11';
const MAC2 = '02:00:00:00:00:12';

function nic(mac: string, dev: number, o: Partial<NicMeta> = {}): NicMeta {
  const s = dev;
  return {
    mac,
    device_number: String(dev),
    network_card: null,
    interface_id: `eni-${dev}`,
    ipv4s: [`10.0.${s}.10`, `10.0.${s}.11`, `10.0.${s}.12`],
    ipv6s: [],
    subnet_ipv4_cidr: `10.0.${s}.0/24`,
    subnet_ipv6_cidrs: [],
    ipv4_prefixes: [],
    ipv6_prefixes: [],
    ...o,
  };
}

const baseNics = (): Record<string, NicMeta> => ({
  [MAC0]: nic(MAC0, 0, { ipv4s: ['10.0.0.10'] }),
  [MAC1]: nic(MAC1, 1, { ipv4_prefixes: ['10.0.1.64/28'] }),
  [MAC2]: nic(MAC2, 2),
});
const baseLinks = (): LinkInfo[] => [
  { ifname: 'eth0', mac: MAC0, up: true },
  { ifname: 'eth1', mac: MAC1, up: true },
  { ifname: 'eth2', mac: MAC2, up: true },
];
const input = (o: Partial<DesiredInput> = {}): DesiredInput => ({
  nics: baseNics(),
  primaryMac: MAC0,
  links: baseLinks(),
  gateways: { eth1: '10.0.1.1' },
  config: { table_base: 10000, primary: null },
  ...o,
});

/** The system just after DHCP: one address per NIC, main-table routes. */
function dhcpActual(): ActualState {
  return {
    rules: [
      { family: 4, priority: 0, from: 'all', table: 255, protocol: 0, extra: false },
      { family: 4, priority: 32766, from: 'all', table: 254, protocol: 0, extra: false },
      { family: 4, priority: 32767, from: 'all', table: 253, protocol: 0, extra: false },
    ],
    routes: [{ family: 4, table: 254, dst: 'default', gateway: '10.0.0.1', dev: 'eth0', protocol: 16, plain: true }],
    addresses: [0, 1, 2].map((i) => ({ family: 4 as const, dev: `eth${i}`, address: `10.0.${i}.10`, prefixlen: 24 })),
    links: baseLinks(),
    ipv6: true,
  };
}

/** Applies changes to a model of the system the way the kernel would (for idempotence tests). */
function simulate(a: ActualState, changes: Change[]): ActualState {
  const s: ActualState = structuredClone(a);
  for (const c of changes) {
    if (c.kind === 'rule') {
      const r = { family: c.rule.family, priority: c.rule.priority, from: c.rule.from, table: c.rule.table, protocol: ROUTING_PROTO, extra: false };
      if (c.op === 'add') s.rules.push(r);
      else s.rules = s.rules.filter((x) => !(x.family === r.family && x.from === r.from && x.table === r.table && x.priority === r.priority && x.protocol === ROUTING_PROTO));
    } else if (c.kind === 'route') {
      const r = c.route;
      const key = (x: { family: number; table: number; dst: string }) => x.family === r.family && x.table === r.table && x.dst === r.dst;
      if (c.op !== 'add') s.routes = s.routes.filter((x) => !(key(x) && x.protocol === ROUTING_PROTO));
      if (c.op !== 'del') s.routes.push({ family: r.family, table: r.table, dst: r.dst, gateway: r.gateway, dev: r.dev, protocol: ROUTING_PROTO, plain: true });
    } else {
      const x = c.address;
      if (c.op === 'add') s.addresses.push({ family: x.family, dev: x.dev, address: x.address, prefixlen: x.prefixlen });
      else s.addresses = s.addresses.filter((y) => !(y.dev === x.dev && y.address === x.address && y.prefixlen === x.prefixlen));
    }
  }
  return s;
}

/** State as a run that applied `changes` would leave it. */
function ownedAfter(prev: OwnedState, d: ReturnType<typeof desiredState>, after: ActualState, changes: Change[]): OwnedState {
  const added = changes.filter((c): c is Extract<Change, { kind: 'address' }> => c.kind === 'address' && c.op === 'add').map((c) => c.address);
  return nextState(prev, d, after, added, new Date(0));
}

/** The base metadata planned on the DHCP-only system and applied: the system after it, and what we then own. */
function reconciledOnce(): { a1: ActualState; owned: OwnedState } {
  const full = desiredState(input());
  const cs = plan(full, dhcpActual(), emptyState());
  const a1 = simulate(dhcpActual(), cs);
  return { a1, owned: ownedAfter(emptyState(), full, a1, cs) };
}

const del = (cs: Change[]) => cs.filter((c) => c.op === 'del');
const add = (cs: Change[]) => cs.filter((c) => c.op === 'add');

// ---------------------------------------------------------------------------------------

describe('routing/addr', () => {
  it('parses strict IPv4 and rejects octal-looking, out-of-range and padded forms', () => {
    expect(parseIp('10.0.1.10')?.text).to.equal('10.0.1.10');
    for (const bad of ['10.0.1.010', '10.0.1.256', '10.0.1', '10.0.1.10 ', ' 10.0.1.10', '10.0.1.10/32', '0x0a.0.0.1', '1.2.3.4.5', '']) {
      expect(parseIp(bad), bad).to.equal(null);
    }
  });
  it('parses IPv6 to the text ip prints, rejecting zones and dotted tails', () => {
    expect(parseIp('2600:1F14:00AA:0000:0000:0000:0000:0010')?.text).to.equal('2600:1f14:aa::10');
    expect(formatIPv6(0x20010db8000000010000000000000001n)).to.equal('2001:db8:0:1::1');
    expect(parseIp('2001:db8:0:0:1:0:0:1')?.text).to.equal('2001:db8::1:0:0:1');
    for (const bad of ['fe80::1%eth0', '::ffff:10.0.0.1', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', ':', 'g::1']) expect(parseIp(bad), bad).to.equal(null);
  });
  it('validates prefixes: host bits, lengths, bare addresses', () => {
    expect(parsePrefix('10.0.2.0/24')).to.deep.include({ text: '10.0.2.0/24', len: 24 });
    expect(parsePrefix('10.0.2.5/24')).to.be.a('string').and.match(/host bits/);
    expect(parsePrefix('10.0.2.0/33')).to.be.a('string');
    expect(parsePrefix('10.0.2.0/024')).to.be.a('string');
    expect(parsePrefix('10.0.2.7')).to.be.a('string');
    expect(parsePrefix('10.0.2.7', { allowBare: true })).to.deep.include({ text: '10.0.2.7/32' });
    expect(parsePrefix('2600:1f14:aa:1::/64')).to.deep.include({ text: '2600:1f14:aa:1::/64' });
  });
  it('knows what is not a unicast host address', () => {
    for (const s of ['127.0.0.1', '224.0.0.5', '255.255.255.255', '0.1.2.3', '169.254.169.254', '::1', 'ff02::1', 'fe80::1']) expect(notUnicast(parseIp(s)!), s).to.be.a('string');
    expect(notUnicast(parseIp('fe80::1')!, true)).to.equal(null);
    expect(notUnicast(parseIp('10.0.0.1')!)).to.equal(null);
  });
});

describe('routing/desired', () => {
  it('two secondary NICs: table, rules for every IP and prefix, subnet and default routes, secondary addresses', () => {
    const d = desiredState(input());
    expect(d.primary).to.deep.equal({ mac: MAC0, ifname: 'eth0', source: 'metadata' });
    expect(d.nics.map((n) => [n.ifname, n.table, n.priority])).to.deep.equal([['eth1', 10001, 10001], ['eth2', 10002, 10002]]);
    const eth1 = d.nics[0]!;
    expect(eth1.rules.map((r) => r.from)).to.deep.equal(['10.0.1.10/32', '10.0.1.11/32', '10.0.1.12/32', '10.0.1.64/28']);
    expect(eth1.rules.every((r) => r.table === 10001 && r.priority === 10001 && r.family === 4)).to.equal(true);
    expect(eth1.routes).to.deep.equal([
      { family: 4, table: 10001, dst: '10.0.1.0/24', dev: 'eth1', scope: 'link' },
      { family: 4, table: 10001, dst: 'default', gateway: '10.0.1.1', dev: 'eth1' },
    ]);
    expect(eth1.gateway4).to.deep.equal({ address: '10.0.1.1', source: 'lease' });
    expect(eth1.addresses).to.deep.equal([
      { family: 4, dev: 'eth1', address: '10.0.1.11', prefixlen: 24 },
      { family: 4, dev: 'eth1', address: '10.0.1.12', prefixlen: 24 },
    ]);
    // No lease for eth2: the subnet's first host.
    expect(d.nics[1]!.gateway4).to.deep.equal({ address: '10.0.2.1', source: 'subnet-first-host' });
    expect(d.skipped).to.deep.equal([]);
  });

  it('the primary NIC gets no table, rules, routes or addresses', () => {
    const d = desiredState(input());
    expect(d.nics.find((n) => n.mac === MAC0)).to.equal(undefined);
    expect(allRules(d).some((r) => r.from.startsWith('10.0.0.'))).to.equal(false);
    expect(allRoutes(d).some((r) => r.dev === 'eth0')).to.equal(false);
    expect(allAddresses(d).some((a) => a.dev === 'eth0')).to.equal(false);
  });

  it('config primary (by name or MAC) overrides the metadata primary', () => {
    for (const primary of ['eth1', MAC1.toUpperCase()]) {
      const d = desiredState(input({ config: { table_base: 10000, primary } }));
      expect(d.primary).to.deep.equal({ mac: MAC1, ifname: 'eth1', source: 'config' });
      expect(d.nics.map((n) => [n.ifname, n.table])).to.deep.equal([['eth0', 10000], ['eth2', 10002]]);
    }
    // A configured primary that is not present falls back to the metadata one, with a note.
    const d = desiredState(input({ config: { table_base: 10000, primary: 'ens9' } }));
    expect(d.primary.source).to.equal('metadata');
    expect(d.skipped[0]).to.include({ what: 'routing.primary' });
  });

  it('falls back to device-number 0 for the primary, and does nothing when it cannot tell', () => {
    expect(desiredState(input({ primaryMac: null })).primary).to.deep.equal({ mac: MAC0, ifname: 'eth0', source: 'device-number-0' });
    const nics = baseNics();
    nics[MAC0]!.device_number = '3';
    const d = desiredState(input({ primaryMac: null, nics }));
    expect(d.nics).to.deep.equal([]);
    expect(d.incomplete).to.deep.equal([MAC0, MAC1, MAC2]);
  });

  it('network card and device number both count; table base is configurable', () => {
    const nics = baseNics();
    nics[MAC2]!.network_card = 1;
    nics[MAC2]!.device_number = 0;
    const d = desiredState(input({ nics, config: { table_base: 20000, primary: null } }));
    expect(d.nics.map((n) => n.table)).to.deep.equal([20001, 20100]);
  });

  it('skips invalid metadata values with a reason and never emits them', () => {
    const nics = baseNics();
    nics[MAC1] = nic(MAC1, 1, {
      ipv4s: ['10.0.1.10', '10.0.1.011', '10.0.1.300', '10.0.1.12 dev lo', '127.0.0.1', '10.0.9.9', '10.0.1.13'],
      ipv4_prefixes: ['10.0.1.64/33', '10.0.1.65/28', '10.0.1.80/28'],
      ipv6s: ['2600:1f14:aa:1::10', 'fe80::5', '2600::1%eth0', '2600:1f14:aa:1::11'],
      subnet_ipv6_cidrs: ['2600:1f14:aa:1::/64', 'nonsense'],
    });
    nics[MAC2] = nic(MAC2, 2, { device_number: '2; reboot' });
    const d = desiredState(input({ nics, gateways: { eth1: '192.168.0.1' } }));
    const eth1 = d.nics.find((n) => n.ifname === 'eth1')!;
    expect(eth1.rules.map((r) => r.from)).to.deep.equal(['10.0.1.10/32', '10.0.9.9/32', '10.0.1.13/32', '2600:1f14:aa:1::10/128', '2600:1f14:aa:1::11/128', '10.0.1.80/28']);
    expect(eth1.addresses.map((a) => `${a.address}/${a.prefixlen}`)).to.deep.equal(['10.0.1.13/24', '2600:1f14:aa:1::11/64']);
    expect(eth1.gateway4).to.deep.equal({ address: '10.0.1.1', source: 'subnet-first-host' });
    const whats = d.skipped.map((s) => s.what);
    expect(whats).to.include.members(['ipv4s[1]', 'ipv4s[2]', 'ipv4s[3]', 'ipv4s[4]', 'ipv4s[5]', 'ipv4_prefixes[0]', 'ipv4_prefixes[1]', 'ipv6s[1]', 'ipv6s[2]', 'subnet_ipv6_cidrs[1]', 'gateway', 'nic', 'ipv6 routes']);
    expect(d.skipped.find((s) => s.what === 'ipv4s[5]')!.reason).to.match(/not inside the subnet/);
    expect(d.skipped.find((s) => s.what === 'nic')).to.include({ mac: MAC2, reason: 'device-number must be an integer 0-9999' });
    expect(d.nics.some((n) => n.mac === MAC2)).to.equal(false);
    expect(d.incomplete).to.include(MAC2);
    const everything = JSON.stringify([allRules(d), allRoutes(d), allAddresses(d)]);
    for (const bad of ['011', '300', 'dev lo', '127.0.0.1', 'fe80::5', '%', '/33', 'reboot', '192.168.0.1']) expect(everything).to.not.include(bad);
  });

  it('rejects bad device numbers, table clashes and priorities after the main rule', () => {
    for (const dn of ['-1', '10000', '1.5', '', 'x', ' 1e3', null]) {
      const nics = baseNics();
      nics[MAC1]!.device_number = dn;
      const d = desiredState(input({ nics }));
      expect(d.nics.map((n) => n.ifname), String(dn)).to.deep.equal(['eth2']);
    }
    const nics = baseNics();
    nics[MAC1]!.device_number = 102; // 10000 + 102 = 10000 + 100×1 + 2
    nics[MAC2]!.network_card = '1';
    nics[MAC2]!.device_number = '2';
    const d = desiredState(input({ nics }));
    expect(d.nics.map((n) => n.ifname)).to.deep.equal(['eth1']);
    expect(d.skipped[0]!.reason).to.match(/table 10102 already used/);
    const hi = desiredState(input({ config: { table_base: 32765, primary: null } }));
    expect(hi.nics).to.deep.equal([]);
    expect(hi.skipped.map((s) => s.reason).join()).to.match(/after the main table's rule/);
  });

  it('IPv6: rules always, routes only with a known default router', () => {
    const nics = baseNics();
    nics[MAC1] = nic(MAC1, 1, { ipv6s: ['2600:1f14:aa:1::10', '2600:1f14:aa:1::11'], subnet_ipv6_cidrs: ['2600:1f14:aa:1::/64'], ipv6_prefixes: ['2600:1f14:aa:1:8000::/80'] });
    let eth1 = desiredState(input({ nics })).nics[0]!;
    expect(eth1.rules.filter((r) => r.family === 6).map((r) => r.from)).to.deep.equal(['2600:1f14:aa:1::10/128', '2600:1f14:aa:1::11/128', '2600:1f14:aa:1:8000::/80']);
    expect(eth1.routes.filter((r) => r.family === 6)).to.deep.equal([]);
    eth1 = desiredState(input({ nics, gateways6: { eth1: 'FE80::1' } })).nics[0]!;
    expect(eth1.routes.filter((r) => r.family === 6)).to.deep.equal([
      { family: 6, table: 10001, dst: '2600:1f14:aa:1::/64', dev: 'eth1' },
      { family: 6, table: 10001, dst: 'default', gateway: 'fe80::1', dev: 'eth1' },
    ]);
    expect(eth1.addresses.filter((a) => a.family === 6)).to.deep.equal([{ family: 6, dev: 'eth1', address: '2600:1f14:aa:1::11', prefixlen: 64 }]);
  });

  it('only NICs present as links; links absent from metadata are incomplete; shared MACs pick the base device', () => {
    const d = desiredState(input({ links: [...baseLinks().filter((l) => l.ifname !== 'eth2'), { ifname: 'docker0', mac: '02:42:00:00:00:01', up: true }] }));
    expect(d.nics.map((n) => n.ifname)).to.deep.equal(['eth1']);
    expect(d.incomplete).to.deep.equal(['02:42:00:00:00:01']);
    const v = desiredState(input({ links: [...baseLinks(), { ifname: 'eth1.5', mac: MAC1, up: true, stacked: true }] }));
    expect(v.nics.map((n) => n.ifname)).to.deep.equal(['eth1', 'eth2']);
  });
});

// Captured with iproute2 6.1 (`ip -n chr-scratch -N -json …`) in a scratch namespace.
const SAMPLE_RULES4 = [{"priority":0,"src":"all","table":"255"},{"priority":500,"src":"10.9.9.9","table":"100"},{"priority":600,"src":"all","fwmark":"0x1","table":"100"},{"priority":601,"src":"all","iif":"eth1","table":"101"},{"priority":602,"src":"all","table":"254","suppress_prefixlen":0},{"priority":603,"not":null,"src":"10.0.0.0","srclen":8,"table":"102"},{"priority":10001,"src":"10.0.5.0","srclen":28,"table":"10001","protocol":"199"},{"priority":10001,"src":"10.0.1.10","table":"10001"},{"priority":10001,"src":"10.0.1.11","table":"10001","protocol":"199"},{"priority":32766,"src":"all","table":"254"},{"priority":32767,"src":"all","table":"253"}];
const SAMPLE_RULES6 = [{"priority":0,"src":"all","table":"255"},{"priority":10001,"src":"2600:1f14:aa:bb::11","table":"10001","protocol":"199"},{"priority":32766,"src":"all","table":"254"}];
const SAMPLE_ROUTES4 = [{"dst":"default","gateway":"10.0.1.1","dev":"eth1","table":"10001","protocol":"199","flags":[]},{"dst":"10.0.1.0/24","dev":"eth1","table":"10001","protocol":"199","scope":"253","flags":[]},{"dst":"10.0.1.99","dev":"eth1","table":"10001","protocol":"199","scope":"253","flags":[]},{"dst":"10.8.0.0/16","table":"10001","flags":[],"nexthops":[{"gateway":"10.0.1.2","dev":"eth1","weight":1,"flags":[]},{"gateway":"10.0.1.3","dev":"eth1","weight":1,"flags":[]}]},{"type":"7","dst":"10.9.0.0/16","table":"10001","protocol":"199","flags":[]},{"dst":"default","gateway":"10.0.1.1","dev":"eth1","protocol":"16","metric":100,"flags":[]},{"dst":"10.0.1.0/24","dev":"eth1","protocol":"2","scope":"253","prefsrc":"10.0.1.10","flags":[]},{"type":"2","dst":"10.0.1.10","dev":"eth1","table":"255","protocol":"2","scope":"254","prefsrc":"10.0.1.10","flags":[]},{"type":"3","dst":"10.0.1.255","dev":"eth1","table":"255","protocol":"2","scope":"253","prefsrc":"10.0.1.10","flags":[]}];
const SAMPLE_ROUTES6 = [{"dst":"2600:1f14:aa:bb::/64","dev":"eth1","table":"10001","protocol":"199","metric":1024,"flags":[],"pref":"medium"},{"dst":"default","gateway":"fe80::1","dev":"eth1","table":"10001","protocol":"199","metric":1024,"flags":[],"pref":"medium"},{"dst":"2600:1f14:aa:bb::/64","dev":"eth1","protocol":"2","metric":256,"flags":[],"pref":"medium"},{"dst":"fe80::/64","dev":"eth1","protocol":"2","metric":256,"flags":[],"pref":"medium"},{"type":"2","dst":"::1","dev":"lo","table":"255","protocol":"2","metric":0,"flags":[],"pref":"medium"},{"type":"5","dst":"ff00::/8","dev":"eth1","table":"255","protocol":"2","metric":256,"flags":[],"pref":"medium"}];
const SAMPLE_ADDR = [{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"0","txqlen":1000,"link_type":"[772]","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"254","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"254","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":2,"link_index":2,"ifname":"eth1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"0","txqlen":1000,"link_type":"[1]","address":"8e:02:f7:ee:06:7c","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"addr_info":[{"family":"inet","local":"10.0.1.10","prefixlen":24,"scope":"0","label":"eth1","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet","local":"10.0.1.11","prefixlen":24,"scope":"0","secondary":true,"noprefixroute":true,"label":"eth1","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"2600:1f14:aa:bb::11","prefixlen":64,"scope":"0","nodad":true,"noprefixroute":true,"valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::8c02:f7ff:feee:67c","prefixlen":64,"scope":"253","tentative":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":3,"ifname":"eth1.5","flags":["BROADCAST","MULTICAST"],"link":"eth1","address":"8E:02:F7:EE:06:7C","addr_info":[]}];

describe('routing/actual parsing (captured ip -N -json output)', () => {
  it('rules: source with length, numeric table and protocol, other selectors flagged', () => {
    const r = parseRules(SAMPLE_RULES4, 4);
    expect(r.find((x) => x.priority === 500)).to.deep.equal({ family: 4, priority: 500, from: '10.9.9.9/32', table: 100, protocol: 0, extra: false });
    expect(r.filter((x) => x.priority === 10001).map((x) => [x.from, x.protocol])).to.deep.equal([['10.0.5.0/28', 199], ['10.0.1.10/32', 0], ['10.0.1.11/32', 199]]);
    expect(r.filter((x) => x.extra).map((x) => x.priority)).to.deep.equal([600, 601, 602, 603]);
    expect(r.find((x) => x.priority === 32766)).to.include({ from: 'all', table: 254 });
    expect(parseRules(SAMPLE_RULES6, 6)[1]).to.deep.equal({ family: 6, priority: 10001, from: '2600:1f14:aa:bb::11/128', table: 10001, protocol: 199, extra: false });
  });
  it('routes: main table implied, host routes get /32, typed and multipath routes are not plain', () => {
    const r = parseRoutes(SAMPLE_ROUTES4, 4);
    expect(r[0]).to.deep.equal({ family: 4, table: 10001, dst: 'default', gateway: '10.0.1.1', dev: 'eth1', protocol: 199, scope: undefined, metric: undefined, plain: true });
    expect(r[1]).to.include({ dst: '10.0.1.0/24', scope: 253, plain: true });
    expect(r[2]).to.include({ dst: '10.0.1.99/32', plain: true });
    expect(r[3]).to.include({ dst: '10.8.0.0/16', plain: false, protocol: 0 });
    expect(r[4]).to.include({ dst: '10.9.0.0/16', plain: false, protocol: 199 });
    expect(r[5]).to.include({ table: 254, dst: 'default', protocol: 16, metric: 100 });
    expect(r.filter((x) => x.table === 255).every((x) => !x.plain)).to.equal(true);
    const r6 = parseRoutes(SAMPLE_ROUTES6, 6);
    expect(r6[1]).to.include({ family: 6, table: 10001, dst: 'default', gateway: 'fe80::1', metric: 1024, plain: true });
    expect(mainDefaultVia(r, 4, 'eth1')).to.equal('10.0.1.1');
    expect(mainDefaultVia(r6, 6, 'eth1')).to.equal(undefined);
  });
  it('addresses and links (stacked devices flagged, MACs lower-cased)', () => {
    expect(parseAddresses(SAMPLE_ADDR).filter((a) => a.dev === 'eth1')).to.deep.equal([
      { family: 4, dev: 'eth1', address: '10.0.1.10', prefixlen: 24 },
      { family: 4, dev: 'eth1', address: '10.0.1.11', prefixlen: 24 },
      { family: 6, dev: 'eth1', address: '2600:1f14:aa:bb::11', prefixlen: 64 },
      { family: 6, dev: 'eth1', address: 'fe80::8c02:f7ff:feee:67c', prefixlen: 64 },
    ]);
    expect(parseLinks(SAMPLE_ADDR)).to.deep.equal([
      { ifname: 'eth1', mac: '8e:02:f7:ee:06:7c', up: true, stacked: false },
      { ifname: 'eth1.5', mac: '8e:02:f7:ee:06:7c', up: false, stacked: true },
    ]);
  });
  it('garbage in, nothing out', () => {
    expect(parseRules({ not: 'a list' }, 4)).to.deep.equal([]);
    expect(parseRoutes([null, 1, { dst: 'bogus' }, { dst: '10.0.0.0/8', gateway: 'x' }], 4)).to.deep.equal([]);
    expect(parseAddresses([{ ifname: 'x', addr_info: [{ family: 'inet', local: '1.2.3', prefixlen: 8 }] }])).to.deep.equal([]);
  });
  it('gateways: the lease first, then a main-table default route through the interface; IPv6 from main', async () => {
    const actual: ActualState = {
      ...dhcpActual(),
      routes: [
        ...dhcpActual().routes,
        { family: 4, table: 254, dst: 'default', gateway: '10.0.1.9', dev: 'eth1', protocol: 16, plain: true },
        { family: 4, table: 254, dst: 'default', gateway: '10.0.2.9', dev: 'eth2', protocol: 16, plain: true },
        { family: 6, table: 254, dst: 'default', gateway: 'fe80::1', dev: 'eth1', protocol: 9, plain: true },
        { family: 4, table: 254, dst: 'default', gateway: '10.0.3.9', dev: 'bad/x', protocol: 16, plain: true },
      ],
    };
    const asked: string[] = [];
    const lease = async (n: string) => {
      asked.push(n);
      if (n === 'eth2') throw new Error('unreadable');
      return n === 'eth1' ? '10.0.1.1' : undefined;
    };
    expect(await readGateways(['eth1', 'eth2', 'eth0', 'bad/x'], actual, lease)).to.deep.equal({
      gateways: { eth1: '10.0.1.1', eth2: '10.0.2.9', eth0: '10.0.0.1' },
      gateways6: { eth1: 'fe80::1' },
    });
    // A name outside [A-Za-z0-9_.:@-]{1,15} gets nothing and is never asked about (as when routing read leases itself).
    expect(asked).to.deep.equal(['eth1', 'eth2', 'eth0']);
    // No lease source: the main table alone.
    expect(await readGateways(['eth1', 'eth2'], actual)).to.deep.equal({ gateways: { eth1: '10.0.1.9', eth2: '10.0.2.9' }, gateways6: { eth1: 'fe80::1' } });
  });
});

describe('stack/dhclient-lease', () => {
  const reader = (files: Record<string, string>, asked: string[]) => async (p: string) => {
    asked.push(p);
    if (p.includes('eth3')) throw new Error('EACCES');
    return files[p] ?? null;
  };
  it('dhclient lease: the last lease’s router', () => {
    const text = 'lease {\n  interface "eth1";\n  option routers 10.0.1.254;\n}\nlease {\n  interface "eth1";\n  fixed-address 10.0.1.10;\n  option routers 10.0.1.1, 10.0.1.2;\n  renew 4 2024/01/01 00:00:00;\n}\n';
    expect(leaseRouter(text)).to.equal('10.0.1.1');
    expect(leaseRouter('lease {\n option routers 10.0.1.01;\n}\n')).to.equal(undefined);
    expect(leaseRouter(null)).to.equal(undefined);
  });
  it('reads <leaseDir>/dhclient.<if>.leases; nothing for a missing or unreadable file', async () => {
    const asked: string[] = [];
    const readFile = reader({ '/l/dhclient.eth1.leases': 'lease {\n  option routers 10.0.1.1;\n}\n' }, asked);
    expect(await dhclientLeaseGateway('eth1', { leaseDir: '/l', readFile })).to.equal('10.0.1.1');
    expect(await dhclientLeaseGateway('eth2', { leaseDir: '/l', readFile })).to.equal(undefined);
    expect(await dhclientLeaseGateway('eth3', { leaseDir: '/l', readFile })).to.equal(undefined);
    expect(asked).to.deep.equal(['/l/dhclient.eth1.leases', '/l/dhclient.eth2.leases', '/l/dhclient.eth3.leases']);
  });
  it('never reads a path built from a name unfit for one', async () => {
    const asked: string[] = [];
    for (const n of ['', '.', '..', 'a/b', '../x', 'eth0 x', 'abcdefghijklmnop']) expect(await dhclientLeaseGateway(n, { leaseDir: '/l', readFile: reader({}, asked) })).to.equal(undefined);
    expect(asked).to.deep.equal([]);
  });
  it('default directory: /var/lib/dhcp under HOTPLUG_ROOT, read when called', async () => {
    const prev = process.env.HOTPLUG_ROOT;
    process.env.HOTPLUG_ROOT = '/tmp/chr-root';
    try {
      const asked: string[] = [];
      expect(defaultLeaseDir()).to.equal('/tmp/chr-root/var/lib/dhcp');
      await dhclientLeaseGateway('eth1', { readFile: reader({}, asked) });
      expect(asked).to.deep.equal(['/tmp/chr-root/var/lib/dhcp/dhclient.eth1.leases']);
    } finally {
      if (prev === undefined) delete process.env.HOTPLUG_ROOT;
      else process.env.HOTPLUG_ROOT = prev;
    }
  });
});

describe('routing/reconcile plan', () => {
  it('from a fresh DHCP system: adds addresses, then routes (subnet before default), then rules', () => {
    const d = desiredState(input());
    const cs = plan(d, dhcpActual(), emptyState());
    expect(del(cs)).to.deep.equal([]);
    expect(cs.map((c) => `${c.kind} ${c.op}`)).to.deep.equal([
      ...Array(4).fill('address add'),
      ...Array(4).fill('route add'),
      ...Array(7).fill('rule add'),
    ]);
    const routes = cs.filter((c) => c.kind === 'route').map(changeArgv);
    expect(routes[0]).to.deep.equal(['-4', 'route', 'add', '10.0.1.0/24', 'dev', 'eth1', 'table', '10001', 'proto', '199', 'scope', 'link']);
    expect(routes[3]).to.deep.equal(['-4', 'route', 'add', 'default', 'via', '10.0.2.1', 'dev', 'eth2', 'table', '10002', 'proto', '199']);
    expect(changeArgv(cs.find((c) => c.kind === 'rule')!)).to.deep.equal(['-4', 'rule', 'add', 'from', '10.0.1.10/32', 'lookup', '10001', 'priority', '10001', 'protocol', '199']);
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
    expect(owned.nics[MAC1]!.rules).to.deep.equal(['4 10.0.1.10/32', '4 10.0.1.11/32', '4 10.0.1.12/32', '4 10.0.1.64/28']);
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
    expect(out.map((c) => `${c.kind} ${c.op} ${c.mac} ${c.reason}`)).to.deep.equal(Array(3).fill(`rule del ${MAC2} NIC gone`));
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
    expect(r.changes.filter((c) => c.kind === 'rule').length).to.equal(7);
    expect(r.notes.map((n) => n.reason).join('\n')).to.match(/waiting for the primary address 10\.0\.2\.10/).and.match(/eth1 is down/);
  });

  it('when a NIC becomes the primary, its rules and routes go; its secondary addresses stay (metadata still assigns them)', () => {
    const { a1, owned } = reconciledOnce();
    const out = plan(desiredState(input({ config: { table_base: 10000, primary: 'eth1' } })), a1, owned);
    const dels = del(out);
    expect(dels.every((c) => c.mac === MAC1 && /primary/.test(c.reason))).to.equal(true);
    expect(dels.map((c) => c.kind).sort()).to.deep.equal(['route', 'route', 'rule', 'rule', 'rule', 'rule']);
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

describe('routing/state', () => {
  it('drops entries that do not validate (never trusted as ownership)', () => {
    const st = validateState({
      nics: {
        [MAC1]: { ifname: 'eth1', table: 10001, rules: ['4 10.0.1.10/32', '4 10.0.1.10', 'x'], addresses: [{ family: 4, address: '10.0.1.11', prefixlen: 24 }, { family: 4, address: '10.0.1.011', prefixlen: 24 }, { family: 6, address: '::1', prefixlen: 200 }] },
        'not-a-mac': { ifname: 'eth9', table: 1, rules: [], addresses: [] },
        [MAC2]: { ifname: 'eth2; ls', table: 10002, rules: [], addresses: [] },
      },
    });
    expect(Object.keys(st.nics)).to.deep.equal([MAC1]);
    expect(st.nics[MAC1]).to.deep.include({ rules: ['4 10.0.1.10/32'], addresses: [{ family: 4, address: '10.0.1.11', prefixlen: 24 }] });
  });
});

// ---------------------------------------------------------------------------------------
// A fake `ip` over an in-memory system, for reconcile()/removeInterface() without root.

interface FakeSys {
  links: Array<{ ifname: string; mac: string; up: boolean }>;
  addrs: Array<{ dev: string; family: 4 | 6; address: string; prefixlen: number }>;
  rules: Array<{ family: 4 | 6; priority: number; from: string; table: number; protocol: number }>;
  routes: Array<{ family: 4 | 6; table: number; dst: string; gateway?: string; dev: string; protocol: number }>;
  log: string[][];
}

function fakeIp(sys: FakeSys): IpRunner {
  const ok = (stdout = '') => ({ exitCode: 0, stdout, stderr: '' });
  const fail = (stderr: string) => ({ exitCode: 2, stdout: '', stderr });
  return async (argv) => {
    const args = argv.filter((a) => a !== '-N' && a !== '-json');
    const family = (args[0] === '-6' ? 6 : 4) as 4 | 6;
    const a = args[0] === '-4' || args[0] === '-6' ? args.slice(1) : args;
    if (a[0] === 'addr' && a[1] === 'show') {
      return ok(JSON.stringify(sys.links.map((l) => ({ ifname: l.ifname, address: l.mac, flags: l.up ? ['UP'] : [], addr_info: sys.addrs.filter((x) => x.dev === l.ifname).map((x) => ({ family: x.family === 4 ? 'inet' : 'inet6', local: x.address, prefixlen: x.prefixlen })) }))));
    }
    if (a[0] === 'rule' && a[1] === 'show') {
      const rs = [{ priority: 0, src: 'all', table: '255' }, ...sys.rules.filter((r) => r.family === family).map((r) => {
        const [src, len] = r.from.split('/');
        return { priority: r.priority, src, ...(Number(len) === (family === 4 ? 32 : 128) ? {} : { srclen: Number(len) }), table: String(r.table), ...(r.protocol ? { protocol: String(r.protocol) } : {}) };
      }), { priority: 32766, src: 'all', table: '254' }];
      return ok(JSON.stringify(rs));
    }
    if (a[0] === 'route' && a[1] === 'show') {
      return ok(JSON.stringify(sys.routes.filter((r) => r.family === family).map((r) => ({ dst: r.dst, ...(r.gateway ? { gateway: r.gateway } : {}), dev: r.dev, ...(r.table === 254 ? {} : { table: String(r.table) }), protocol: String(r.protocol), flags: [] }))));
    }
    sys.log.push([...argv]);
    const opt = (k: string) => a[a.indexOf(k) + 1]!;
    if (a[0] === 'rule') {
      const r = { family, priority: Number(opt('priority')), from: opt('from'), table: Number(opt('lookup')), protocol: Number(opt('protocol')) };
      const i = sys.rules.findIndex((x) => x.family === r.family && x.priority === r.priority && x.from === r.from && x.table === r.table && x.protocol === r.protocol);
      if (a[1] === 'add') return i >= 0 ? fail('RTNETLINK answers: File exists') : (sys.rules.push(r), ok());
      return i < 0 ? fail('RTNETLINK answers: No such file or directory') : (sys.rules.splice(i, 1), ok());
    }
    if (a[0] === 'route') {
      const dev = opt('dev');
      if (!sys.links.some((l) => l.ifname === dev)) return { exitCode: 1, stdout: '', stderr: `Cannot find device "${dev}"` };
      const r = { family, table: Number(opt('table')), dst: a[2]!, gateway: a.includes('via') ? opt('via') : undefined, dev, protocol: Number(opt('proto')) };
      const i = sys.routes.findIndex((x) => x.family === r.family && x.table === r.table && x.dst === r.dst);
      if (a[1] === 'add') return i >= 0 ? fail('RTNETLINK answers: File exists') : (sys.routes.push(r), ok());
      if (a[1] === 'replace') return (i >= 0 ? sys.routes.splice(i, 1, r) : sys.routes.push(r), ok());
      return i < 0 ? fail('RTNETLINK answers: No such process') : (sys.routes.splice(i, 1), ok());
    }
    if (a[0] === 'addr') {
      const [address, len] = a[2]!.split('/');
      const x = { dev: opt('dev'), family, address: address!, prefixlen: Number(len) };
      const i = sys.addrs.findIndex((y) => y.dev === x.dev && y.address === x.address && y.prefixlen === x.prefixlen);
      if (a[1] === 'add') return i >= 0 ? fail('RTNETLINK answers: File exists') : (sys.addrs.push(x), ok());
      return i < 0 ? fail('RTNETLINK answers: Cannot assign requested address') : (sys.addrs.splice(i, 1), ok());
    }
    return fail(`fake ip: unsupported ${argv.join(' ')}`);
  };
}

describe('routing/reconcile() with an injected ip runner', () => {
  let dir: string;
  let sys: FakeSys;
  const summary = () => ({ nics: baseNics(), primary_mac: MAC0 });
  const config = { enabled: true, table_base: 10000, primary: null };
  const env = () => ({ ip: fakeIp(sys), statePath: join(dir, 'routing-state.json'), leaseGateway: (n: string) => dhclientLeaseGateway(n, { leaseDir: dir }) });

  before(() => setQuiet(true));
  after(() => setQuiet(false));
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chr-routing-'));
    sys = {
      links: baseLinks(),
      addrs: [0, 1, 2].map((i) => ({ dev: `eth${i}`, family: 4 as const, address: `10.0.${i}.10`, prefixlen: 24 })),
      rules: [{ family: 4, priority: 500, from: '10.0.2.11/32', table: 100, protocol: 0 }],
      routes: [{ family: 4, table: 254, dst: 'default', gateway: '10.0.0.1', dev: 'eth0', protocol: 16 }],
      log: [],
    };
    await writeFile(join(dir, 'dhclient.eth2.leases'), 'lease {\n  interface "eth2";\n  option routers 10.0.2.254;\n}\n');
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('applies, records ownership, and a second run changes nothing', async () => {
    const r1 = await reconcile({ summary: summary(), config, metadataComplete: true, env: env() });
    expect(r1.failed).to.deep.equal([]);
    expect(r1.applied.length).to.equal(15);
    expect(sys.routes.find((r) => r.table === 10002 && r.dst === 'default')?.gateway).to.equal('10.0.2.254');
    const st = JSON.parse(await readFile(join(dir, 'routing-state.json'), 'utf8'));
    expect(st).to.deep.include({ version: 1, protocol: 199 });
    expect(st.nics[MAC2].addresses).to.deep.equal([{ family: 4, address: '10.0.2.11', prefixlen: 24 }, { family: 4, address: '10.0.2.12', prefixlen: 24 }]);
    const n = sys.log.length;
    const r2 = await reconcile({ summary: summary(), config, metadataComplete: true, env: env() });
    expect(r2.changes).to.deep.equal([]);
    expect(sys.log.length).to.equal(n);
    expect(sys.rules).to.deep.include({ family: 4, priority: 500, from: '10.0.2.11/32', table: 100, protocol: 0 });
  });

  it('dry run and disabled change nothing', async () => {
    const r = await reconcile({ summary: summary(), config, metadataComplete: true, dryRun: true, env: env() });
    expect(r.changes.length).to.equal(15);
    const off = await reconcile({ summary: summary(), config: { ...config, enabled: false }, metadataComplete: true, env: env() });
    expect(off.changes).to.deep.equal([]);
    expect(sys.log).to.deep.equal([]);
  });

  it('removeInterface removes exactly the NIC’s rules, routes and recorded addresses', async () => {
    await reconcile({ summary: summary(), config, metadataComplete: true, env: env() });
    sys.addrs.push({ dev: 'eth2', family: 4, address: '10.0.2.99', prefixlen: 24 }); // someone else's
    const r = await removeInterface('eth2', { env: env() });
    expect(r.failed).to.deep.equal([]);
    expect(sys.rules.filter((x) => x.table === 10002)).to.deep.equal([]);
    expect(sys.routes.filter((x) => x.table === 10002)).to.deep.equal([]);
    expect(sys.addrs.filter((x) => x.dev === 'eth2').map((x) => x.address)).to.deep.equal(['10.0.2.10', '10.0.2.99']);
    expect(sys.rules.filter((x) => x.table === 10001).length).to.equal(4);
    const st = JSON.parse(await readFile(join(dir, 'routing-state.json'), 'utf8'));
    expect(Object.keys(st.nics)).to.deep.equal([MAC1]);
  });

  it('without a lease source: a main-table default route through the NIC, else the subnet’s first host', async () => {
    sys.routes.push({ family: 4, table: 254, dst: 'default', gateway: '10.0.1.9', dev: 'eth1', protocol: 16 });
    const r = await reconcile({ summary: summary(), config, metadataComplete: true, env: { ...env(), leaseGateway: undefined } });
    expect(r.failed).to.deep.equal([]);
    expect(sys.routes.find((x) => x.table === 10001 && x.dst === 'default')?.gateway).to.equal('10.0.1.9');
    expect(sys.routes.find((x) => x.table === 10002 && x.dst === 'default')?.gateway).to.equal('10.0.2.1');
  });

  it('removeInterface with a table number reused by another present NIC: only the removed NIC’s recorded sources and device go', async () => {
    await reconcile({ summary: summary(), config, metadataComplete: true, env: env() });
    const MAC3 = '02:00:00:00:00:13';
    sys.links.push({ ifname: 'eth3', mac: MAC3, up: true });
    sys.rules.push({ family: 4, priority: 10002, from: '10.0.3.10/32', table: 10002, protocol: ROUTING_PROTO });
    sys.routes.push({ family: 4, table: 10002, dst: '10.0.3.0/24', dev: 'eth3', protocol: ROUTING_PROTO });
    const path = join(dir, 'routing-state.json');
    const st = JSON.parse(await readFile(path, 'utf8'));
    st.nics[MAC3] = { ifname: 'eth3', table: 10002, rules: ['4 10.0.3.10/32'], addresses: [], updated: st.nics[MAC2].updated };
    await writeFile(path, JSON.stringify(st));
    const n = sys.log.length;
    const dry = await removeInterface('eth2', { env: env(), dryRun: true });
    expect(sys.log.length).to.equal(n);
    expect(dry.changes.filter((c) => c.kind === 'rule').map((c) => c.kind === 'rule' && c.rule.from)).to.deep.equal(['10.0.2.10/32', '10.0.2.11/32', '10.0.2.12/32']);
    expect(dry.changes.every((c) => c.mac === MAC2 && c.reason === 'interface removed')).to.equal(true);
    const r = await removeInterface('eth2', { env: env() });
    expect(r.failed).to.deep.equal([]);
    expect(r.changes).to.deep.equal(dry.changes);
    expect(sys.rules.filter((x) => x.table === 10002)).to.deep.equal([{ family: 4, priority: 10002, from: '10.0.3.10/32', table: 10002, protocol: ROUTING_PROTO }]);
    expect(sys.routes.filter((x) => x.table === 10002)).to.deep.equal([{ family: 4, table: 10002, dst: '10.0.3.0/24', dev: 'eth3', protocol: ROUTING_PROTO }]);
    expect(Object.keys(JSON.parse(await readFile(path, 'utf8')).nics).sort()).to.deep.equal([MAC1, MAC3]);
  });

  it('flushOwned removes every rule and route of ours (attributed by table), rules first; addresses and foreign rules stay', async () => {
    await reconcile({ summary: summary(), config, metadataComplete: true, env: env() });
    const addrs = JSON.stringify(sys.addrs);
    const ours = { rules: sys.rules.filter((x) => x.protocol === ROUTING_PROTO).length, routes: sys.routes.filter((x) => x.protocol === ROUTING_PROTO).length };
    const n = sys.log.length;
    const dry = await flushOwned({ env: env(), dryRun: true });
    expect(sys.log.length).to.equal(n);
    const kinds = dry.changes.map((c) => c.kind);
    expect({ rules: kinds.filter((k) => k === 'rule').length, routes: kinds.filter((k) => k === 'route').length }).to.deep.equal(ours);
    expect(kinds.lastIndexOf('rule')).to.be.lessThan(kinds.indexOf('route'));
    expect(dry.changes.every((c) => c.op === 'del' && c.reason === 'policy routing removed')).to.equal(true);
    expect(dry.changes.map((c) => (c.kind === 'rule' ? [c.rule.table, c.mac] : c.kind === 'route' ? [c.route.table, c.mac] : []))).to.deep.include.members([
      [10001, MAC1],
      [10002, MAC2],
    ]);
    const r = await flushOwned({ env: env() });
    expect(r.failed).to.deep.equal([]);
    expect(r.changes).to.deep.equal(dry.changes);
    expect(sys.rules).to.deep.equal([{ family: 4, priority: 500, from: '10.0.2.11/32', table: 100, protocol: 0 }]);
    expect(sys.routes).to.deep.equal([{ family: 4, table: 254, dst: 'default', gateway: '10.0.0.1', dev: 'eth0', protocol: 16 }]);
    expect(JSON.stringify(sys.addrs)).to.equal(addrs);
    expect(JSON.parse(await readFile(join(dir, 'routing-state.json'), 'utf8')).nics).to.deep.equal({});
  });

  it('routes view and the apply --dry-run preview', async () => {
    const pre = await previewRoutes(summary(), { ...defaultConfig, routing: config }, env());
    expect(pre.lines[0]).to.equal('ip -4 addr add 10.0.1.11/24 dev eth1 noprefixroute');
    expect(pre.lines).to.include('ip -4 route add default via 10.0.2.254 dev eth2 table 10002 proto 199');
    await reconcile({ summary: { nics: { ...baseNics(), [MAC1]: nic(MAC1, 1, { ipv4s: ['10.0.1.10', '10.0.1.11', '10.0.1.12', '10.0.1.13'] }) }, primary_mac: MAC0 }, config, metadataComplete: true, env: env() });
    const v = routesView(await snapshot({ summary: summary(), config, metadataComplete: true, env: env() }), true);
    expect(v.text).to.include('primary: eth0 02:00:00:00:00:10 (metadata; main table, no rules)');
    expect(v.text).to.include('  - from 10.0.1.13/32 lookup 10001 priority 10001   # to remove: no longer in metadata');
    expect(v.text).to.include('  + from 10.0.1.64/28 lookup 10001 priority 10001');
    expect(v.text).to.include('  ~ from 10.0.2.11/32 lookup 100 priority 500');
    expect(v.text).to.include('    10.0.2.11/24 dev eth2');
    expect(v.text).to.match(/3 change\(s\) pending/);
    expect((v.json.pending as unknown[]).length).to.equal(3);
    expect(sys.log.length).to.equal(16); // the reconcile's; the preview and the view ran none
  });

  it('applyPlan: failures are reported and do not stop the rest; EEXIST/ENOENT are not failures', async () => {
    const cs: Change[] = [
      { kind: 'route', op: 'add', route: { family: 4, table: 10009, dst: 'default', gateway: '10.0.9.1', dev: 'eth9' }, mac: null, ifname: 'eth9', reason: 'test' },
      { kind: 'rule', op: 'del', rule: { family: 4, from: '10.0.9.9/32', table: 10009, priority: 10009 }, mac: null, ifname: null, reason: 'test' },
      { kind: 'rule', op: 'add', rule: { family: 4, from: '10.0.9.9/32', table: 10009, priority: 10009 }, mac: null, ifname: null, reason: 'test' },
    ];
    const r = await applyPlan(cs, fakeIp(sys));
    expect(r.map((x) => x.status)).to.deep.equal(['failed', 'gone', 'ok']);
    expect(r[0]!.error).to.match(/Cannot find device/);
  });
});
