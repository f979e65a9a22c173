/**
 * The routing input adapter (src/routing/metadata-input.ts) and the poller's fingerprint over
 * ports: a datasource without EC2's per-NIC metadata (OpenStack, ConfigDrive) maps onto the same
 * desired state, its DHCP address taken from the interface, a static port's gateway from metadata.
 */
import { expect } from 'chai';
import type { InstanceSummary, PortMeta } from '../bridge/index.js';
import { routingMeta } from '../src/routing/metadata-input.js';
import { desiredState } from '../src/routing/desired.js';
import { fingerprint, describeChange } from '../src/daemon/fingerprint.js';

const port = (o: Partial<PortMeta> & { mac: string }): PortMeta => ({ index: null, name: null, dhcp4: false, dhcp6: false, ipv4: [], ipv6: [], gateway4: null, gateway6: null, routes: [], ...o });

const P0 = port({ mac: 'fa:16:3e:00:00:01', index: 0, name: 'eth0', dhcp4: true, gateway4: '10.0.1.1' });
const P1 = port({ mac: 'fa:16:3e:00:00:02', index: 1, name: 'eth1', dhcp4: true, ipv4: [{ address: '10.0.2.20', prefixlen: 24 }] });
const P2 = port({ mac: 'fa:16:3e:00:00:03', index: 2, name: 'eth2', ipv4: [{ address: '10.0.3.30', prefixlen: 24 }, { address: '10.0.3.31', prefixlen: 24 }], gateway4: '10.0.3.254' });
const summary = { nics: {}, primary_mac: null, ports: { [P0.mac]: P0, [P1.mac]: P1, [P2.mac]: P2 } } satisfies Pick<InstanceSummary, 'nics' | 'primary_mac' | 'ports'>;
const links = [
  { ifname: 'eth0', mac: P0.mac, up: true },
  { ifname: 'eth1', mac: P1.mac, up: true },
  { ifname: 'eth2', mac: P2.mac, up: true },
];
const addr = (dev: string, address: string) => ({ family: 4 as const, dev, address, prefixlen: 24 });

describe('routing input: ports of any datasource in desired.ts shape', () => {
  it('DHCP port: its lease address first (from the interface), then the static fixed IPs; static port: its addresses and the gateway metadata gives', () => {
    const m = routingMeta(summary, { links, addresses: [addr('eth0', '10.0.1.10'), addr('eth1', '10.0.2.10'), addr('eth1', '10.0.2.20'), addr('eth2', '10.0.3.30'), addr('eth2', '10.0.3.31')] });
    expect(m.nics[P1.mac]).to.deep.include({ ipv4s: ['10.0.2.10', '10.0.2.20'], subnet_ipv4_cidr: '10.0.2.0/24', device_number: 1, network_card: 0 });
    expect(m.nics[P2.mac]).to.deep.include({ ipv4s: ['10.0.3.30', '10.0.3.31'], subnet_ipv4_cidr: '10.0.3.0/24', device_number: 2 });
    expect(m.gateways).to.deep.equal({ eth2: '10.0.3.254' });
    const d = desiredState({ nics: m.nics, primaryMac: m.primaryMac, links, gateways: { eth1: '10.0.2.1', ...m.gateways }, config: { table_base: 10000, primary: null } });
    expect(d.primary).to.deep.equal({ mac: P0.mac, ifname: 'eth0', source: 'device-number-0' });
    const t2 = d.nics.find((n) => n.mac === P2.mac)!;
    expect(t2.table).to.equal(10002);
    expect(t2.gateway4).to.deep.equal({ address: '10.0.3.254', source: 'lease' });
    expect(t2.rules.filter((r) => r.to === undefined).map((r) => r.from)).to.deep.equal(['10.0.3.30/32', '10.0.3.31/32']);
    expect(d.nics.find((n) => n.mac === P1.mac)!.rules.filter((r) => r.to === undefined).map((r) => r.from)).to.deep.equal(['10.0.2.10/32', '10.0.2.20/32']);
  });

  it('a DHCP port without its lease yet is incomplete (nothing planned or deleted), never its static IP taken for the DHCP one', () => {
    const m = routingMeta(summary, { links, addresses: [addr('eth0', '10.0.1.10'), addr('eth1', '10.0.2.20')] });
    expect(m.nics[P1.mac]!.ipv4s).to.deep.equal([]);
    const d = desiredState({ nics: m.nics, primaryMac: null, links, gateways: {}, config: { table_base: 10000, primary: null } });
    expect(d.incomplete).to.include(P1.mac);
    expect(d.nics.map((n) => n.mac)).to.not.include(P1.mac);
  });

  it("EC2's own NIC metadata wins over its ports (unchanged behaviour)", () => {
    const ec2 = { mac: P1.mac, device_number: '5', network_card: null, interface_id: 'eni-1', ipv4s: ['10.0.2.9'], ipv6s: [], subnet_ipv4_cidr: '10.0.2.0/24', subnet_ipv6_cidrs: [], ipv4_prefixes: [], ipv6_prefixes: [] };
    const m = routingMeta({ ...summary, nics: { [P1.mac]: ec2 }, primary_mac: P0.mac }, { links, addresses: [] });
    expect(m.nics[P1.mac]).to.equal(ec2);
    expect(m.primaryMac).to.equal(P0.mac);
  });

  it('fingerprint: unchanged without ports; a fixed IP added to a port changes it and is described; presence alone does not', () => {
    const plain = { nics: {}, primary_mac: null };
    expect(fingerprint(plain)).to.equal(fingerprint({ ...plain, ports: {} }));
    const a = fingerprint(summary);
    const more = { ...summary, ports: { ...summary.ports, [P2.mac]: { ...P2, ipv4: [...P2.ipv4, { address: '10.0.3.32', prefixlen: 24 }] } } };
    expect(fingerprint(more)).to.not.equal(a);
    expect(describeChange(summary, more)).to.equal(`+ipv4 10.0.3.32/24 on ${P2.mac}`);
    const absent = { ...summary, ports: { ...summary.ports, [P2.mac]: { ...P2, name: null } } };
    expect(fingerprint(absent)).to.equal(a);
    const { [P2.mac]: _gone, ...rest } = summary.ports;
    void _gone;
    expect(describeChange(summary, { ...summary, ports: rest })).to.equal(`-nic ${P2.mac}`);
  });
});
