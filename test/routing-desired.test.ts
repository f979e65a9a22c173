/**
 * Policy routing from metadata: address parsing (routing/addr), the desired rules, routes and
 * addresses (routing/desired), and validation of the owned-state file (routing/state).
 */
import { expect } from 'chai';
import { parseIp, parsePrefix, formatIPv6, notUnicast } from '../src/routing/addr.js';
import { desiredState, allRules, allRoutes, allAddresses } from '../src/routing/desired.js';
import { validateState } from '../src/routing/state.js';
import { MAC0, MAC1, MAC2, nic, baseNics, baseLinks, input } from './helpers/routing-fixtures.js';

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
    const own = eth1.rules.filter((r) => r.to === undefined);
    expect(own.map((r) => r.from)).to.deep.equal(['10.0.1.10/32', '10.0.1.11/32', '10.0.1.12/32', '10.0.1.64/28']);
    expect(own.every((r) => r.table === 10001 && r.priority === 10001 && r.family === 4)).to.equal(true);
    // And towards the other NICs' subnets, through its own table (ahead of the main-table rule).
    expect(eth1.rules.filter((r) => r.to !== undefined).map((r) => `${r.from} ${r.to} ${r.table} ${r.priority}`)).to.deep.equal(['10.0.1.0/24 10.0.0.0/24 10001 9998', '10.0.1.0/24 10.0.2.0/24 10001 9998']);
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
    expect(eth1.rules.filter((r) => r.to === undefined).map((r) => r.from)).to.deep.equal(['10.0.1.10/32', '10.0.9.9/32', '10.0.1.13/32', '2600:1f14:aa:1::10/128', '2600:1f14:aa:1::11/128', '10.0.1.80/28']);
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
