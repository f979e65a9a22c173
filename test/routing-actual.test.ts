/**
 * What the system has: captured `ip -N -json` output parsed (routing/actual), and the router of
 * dhclient's lease (stack/dhclient-lease).
 */
import { expect } from 'chai';
import { parseRules, parseRoutes, parseAddresses, parseLinks, mainDefaultVia, readGateways, type ActualState } from '../src/routing/actual.js';
import { leaseRouter, dhclientLeaseGateway, defaultLeaseDir } from '../src/stack/dhclient-lease.js';
import { dhcpActual } from './helpers/routing-fixtures.js';

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
  it("a router advertisement's default route (its hop limit as a metric) is plain: the NIC's IPv6 gateway", () => {
    // Captured in the lab (`ip -N -json -6 route show table all`, dnsmasq's RA, iproute2 6.1).
    const ra = [{ dst: 'default', gateway: 'fe80::cc73:cbff:fe3c:9e7', dev: 'eth1', protocol: '9', metric: 1024, flags: [], expires: 1789, metrics: [{ hoplimit: 64 }], pref: 'medium' }];
    expect(mainDefaultVia(parseRoutes(ra, 6), 6, 'eth1')).to.equal('fe80::cc73:cbff:fe3c:9e7');
    // Any other metric (an operator's `mtu`, `advmss`) keeps a route out of "plain".
    expect(parseRoutes([{ ...ra[0], metrics: [{ hoplimit: 64, mtu: 1400 }] }], 6)[0]).to.include({ plain: false });
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
