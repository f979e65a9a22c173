/**
 * What `hotplug daemon` watches: the link monitor's parsing and folding, the metadata poller's
 * fingerprint and delays, and the routing watch's `ip monitor` lines.
 */
import { expect } from 'chai';
import { parseLinkLine, LinkMonitor, linkUp } from '../src/daemon/monitor.js';
import { fingerprint, describeChange, pollDelay } from '../src/daemon/fingerprint.js';
import { jittered } from '../src/util/backoff.js';
import type { NicMeta } from '../bridge/index.js';

describe('daemon: link monitor', () => {
  const L = (s: string) => parseLinkLine(s)!;
  it('parses ip -o link / monitor lines (names with @peer, flags, MAC, Deleted)', () => {
    const a = L('3: vA@vB: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether 4a:b0:64:39:a2:16 brd ff:ff:ff:ff:ff:ff');
    expect(a).to.deep.equal({ deleted: false, index: 3, ifname: 'vA', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mac: '4a:b0:64:39:a2:16' });
    expect(linkUp(a)).to.equal(true);
    const d = L('Deleted 2: vB@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 02:54:2E:f2:77:f5 brd ff:ff:ff:ff:ff:ff');
    expect(d.deleted).to.equal(true);
    expect(d.mac).to.equal('02:54:2e:f2:77:f5');
    expect(linkUp(L('4: eth1: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 state DOWN'))).to.equal(false);
    expect(parseLinkLine('nsid 3 current 3')).to.equal(null);
    expect(parseLinkLine('')).to.equal(null);
  });

  it('folds lines into add, remove (with the last known MAC and name), rename and up/down callbacks', () => {
    const seen: string[] = [];
    const m = new LinkMonitor({
      onAdd: (l) => seen.push(`add ${l.ifname} ${l.mac}`),
      onRemove: (l) => seen.push(`remove ${l.ifname} ${l.mac}`),
      onRename: (a, b) => seen.push(`rename ${a.ifname}>${b.ifname}`),
      onState: (l, up) => seen.push(`${up ? 'up' : 'down'} ${l.ifname}`),
    });
    m.feed('5: eth5: <BROADCAST> mtu 1500 \\ link/ether 02:00:00:00:00:05 brd ff'); // before the listing: buffered
    m.load('1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 \\ link/ether 02:00:00:00:00:01 brd ff', false);
    m.feed('2: eth0: <BROADCAST,MULTICAST,UP> mtu 1500 \\ link/ether 02:00:00:00:00:01 brd ff');
    m.feed('2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 \\ link/ether 02:00:00:00:00:01 brd ff');
    m.feed('5: ens5: <BROADCAST> mtu 1500 \\ link/ether 02:00:00:00:00:05 brd ff');
    m.feed('Deleted 5: ens5: <BROADCAST> mtu 1500');
    expect(seen).to.deep.equal(['add eth5 02:00:00:00:00:05', 'down eth0', 'up eth0', 'rename eth5>ens5', 'remove ens5 02:00:00:00:00:05']);
    // A new listing after a monitor restart reports what changed meanwhile.
    seen.length = 0;
    m.load('1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n7: eth7: <BROADCAST> mtu 1500 \\ link/ether 02:00:00:00:00:07 brd ff', true);
    expect(seen).to.deep.equal(['remove eth0 02:00:00:00:00:01', 'add eth7 02:00:00:00:00:07']);
  });
});

describe('daemon: poller helpers', () => {
  const nic = (mac: string, ips: string[]): NicMeta => ({
    mac, device_number: 1, network_card: 0, interface_id: 'eni-1', ipv4s: ips, ipv6s: [], subnet_ipv4_cidr: '10.0.2.0/24', subnet_ipv6_cidrs: [], ipv4_prefixes: [], ipv6_prefixes: [],
  });
  it('fingerprint: same metadata in any key order → same hash; an added secondary IP → different', () => {
    const a = { primary_mac: 'aa', nics: { m1: nic('m1', ['10.0.2.10']) } };
    const b = { nics: { m1: { ...nic('m1', ['10.0.2.10']) } }, primary_mac: 'aa' };
    expect(fingerprint(a)).to.equal(fingerprint(b));
    const c = { primary_mac: 'aa', nics: { m1: nic('m1', ['10.0.2.10', '10.0.2.20']) } };
    expect(fingerprint(c)).to.not.equal(fingerprint(a));
    expect(describeChange(a, c)).to.equal('+ipv4 10.0.2.20 on m1');
    expect(describeChange(c, a)).to.equal('-ipv4 10.0.2.20 on m1');
    expect(describeChange(a, { nics: {} })).to.equal('-nic m1');
  });
  it('poll delay: interval ±20%; after errors the shared backoff (full jitter), never sooner than the interval, capped at 5 minutes', () => {
    expect(jittered(10_000, 0.2, () => 0)).to.equal(8000);
    expect(jittered(10_000, 0.2, () => 1)).to.equal(12_000);
    for (let i = 0; i < 200; i++) {
      const d = pollDelay(10_000, 0);
      expect(d).to.be.within(8000, 12_000);
    }
    expect(pollDelay(10_000, 2, 300_000, () => 0.5)).to.equal(20_000);
    expect(pollDelay(10_000, 2, 300_000, () => 0)).to.equal(10_000);
    expect(pollDelay(10_000, 30, 300_000, () => 1)).to.equal(300_000);
  });
});

describe('routing watch: `ip -o monitor address route rule` lines (real iproute2 output)', () => {
  const lines = {
    addrAdd: '3: va    inet 10.9.0.2/24 scope global va\\       valid_lft forever preferred_lft forever',
    addrDel: 'Deleted 3: va    inet 10.9.0.2/24 scope global va\\       valid_lft forever preferred_lft forever',
    ll6: '3: va    inet6 fe80::a481:19ff:fe97:93a4/64 scope link \\       valid_lft forever preferred_lft forever',
    ruleDel: 'Deleted 10002:\tfrom 10.9.0.2 lookup 10002 proto 199',
    routeDel: 'Deleted default via 10.9.0.1 dev va table 10002 proto 199 ',
    othersRouteDel: 'Deleted 10.9.0.0/24 dev va proto kernel scope link src 10.9.0.2 ',
    othersRuleDel: 'Deleted 500:\tfrom 10.9.0.2 lookup 100',
    ourRouteAdd: 'default via 10.9.0.1 dev va table 10002 proto 199 ',
    // Captured in the lab (`ip -o monitor route`, dnsmasq's RA on a hot-added NIC).
    raDefault: 'default via fe80::c39:84ff:fe9e:80da dev eth1 proto ra metric 1024 expires 1800sec pref medium',
    raDefaultDel: 'Deleted default via fe80::c39:84ff:fe9e:80da dev eth1 proto ra metric 1024 pref medium',
    ourDefault6: 'default via fe80::c39:84ff:fe9e:80da dev eth1 table 10001 proto 199 metric 1024 pref medium',
    link: '3: va@vb: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP \\    link/ether 02:00:00:aa:bb:cc brd ff:ff:ff:ff:ff:ff',
  };
  it('an address coming or going on an interface (not IPv6 link-local) is a change', async () => {
    const { parseRoutingLine } = await import('../src/daemon/monitor.js');
    expect(parseRoutingLine(lines.addrAdd, 199)).to.deep.equal({ kind: 'address', ifname: 'va', deleted: false });
    expect(parseRoutingLine(lines.addrDel, 199)).to.deep.equal({ kind: 'address', ifname: 'va', deleted: true });
    expect(parseRoutingLine(lines.ll6, 199)).to.equal(null);
  });
  it('a rule or route of ours deleted is a change; others\' deletions, additions and links are not', async () => {
    const { parseRoutingLine, parseLinkLine } = await import('../src/daemon/monitor.js');
    expect(parseRoutingLine(lines.ruleDel, 199)).to.deep.equal({ kind: 'ours-deleted', what: 'rule' });
    expect(parseRoutingLine(lines.routeDel, 199)).to.deep.equal({ kind: 'ours-deleted', what: 'route' });
    expect(parseRoutingLine(lines.othersRouteDel, 199)).to.equal(null);
    expect(parseRoutingLine(lines.othersRuleDel, 199)).to.equal(null);
    expect(parseRoutingLine(lines.ourRouteAdd, 199)).to.equal(null);
    expect(parseRoutingLine(lines.routeDel, 42), 'another protocol number').to.equal(null);
    // An IPv6 default router from an RA is what a NIC's IPv6 table may be waiting for; ours in a table is not.
    expect(parseRoutingLine(lines.raDefault, 199)).to.deep.equal({ kind: 'router6', ifname: 'eth1' });
    expect(parseRoutingLine(lines.raDefaultDel, 199)).to.equal(null);
    expect(parseRoutingLine(lines.ourDefault6, 199)).to.equal(null);
    // Address and rule lines are never mistaken for links, and link lines never for routing changes.
    for (const l of [lines.addrAdd, lines.addrDel, lines.ruleDel, lines.routeDel]) expect(parseLinkLine(l), l).to.equal(null);
    expect(parseLinkLine(lines.link)).to.include({ ifname: 'va', index: 3 });
  });
});
