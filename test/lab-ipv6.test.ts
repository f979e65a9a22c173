/**
 * The lab's dual-stack pieces, pure: EC2's IPv6 leaves in the IMDS tree, IPv6 allocation, dnsmasq's
 * RA/DHCPv6 arguments and hosts lines, and the IPv6 half of the cloud's source check.
 */
import { expect } from 'chai';
import { newModel, buildTree, type Tree } from '../scripts/lab/metadata.js';
import { newAttachment, nicModelOf } from '../scripts/lab/alloc.js';
import { dnsmasqArgvIn, hostsFileContent } from '../scripts/lab/dhcp.js';
import { srcCheckRuleset } from '../scripts/lab/fabric.js';
import type { LabState } from '../scripts/lab/state.js';

const state = (): LabState =>
  ({ version: 1, name: 'u6', mode: 'faithful', phase: 'up', createdAt: '', updatedAt: '', options: { hotplugUserdata: true, udev: true, ipv6: true }, netns: { cloud: 'c', inst: 'i' }, procs: {}, counters: { mac: 0, vif: 0 }, attachments: [], stages: [] }) as LabState;
const PATHS = { dnsmasqPid: '/p', dnsmasqLog: '/l', dhcpLeases: '/x', dhcpHosts: '/h' };

describe('lab: dual-stack VPC (up --ipv6)', () => {
  it("EC2's per-MAC ipv6s and subnet-ipv6-cidr-blocks, only for a NIC with IPv6", () => {
    const s = state();
    const m = newModel('u6', 'faithful', null, 'ec2', true);
    const a = newAttachment(s, m, { subnet: 2, secondaryIps: 0, inMetadata: true, ipv6s: 2 });
    s.attachments.push(a);
    const b = newAttachment(s, m, { subnet: 2, secondaryIps: 0, inMetadata: true });
    m.nics.push(nicModelOf(a), nicModelOf(b));
    expect(a.ipv6s).to.deep.equal(['fd00:10:0:2::a', 'fd00:10:0:2::b']);
    const macs = ((buildTree(m, 'latest')['meta-data'] as Tree).network as Tree).interfaces as Tree;
    const ta = (macs.macs as Tree)[a.mac] as Tree;
    expect(ta['ipv6s']).to.equal('fd00:10:0:2::a\nfd00:10:0:2::b');
    expect(ta['subnet-ipv6-cidr-blocks']).to.equal('fd00:10:0:2::/64');
    expect(ta['vpc-ipv6-cidr-blocks']).to.equal('fd00:10::/56');
    expect(((macs.macs as Tree)[b.mac] as Tree)['ipv6s']).to.equal(undefined);
    // A later NIC's addresses do not repeat those in use.
    expect(newAttachment(s, m, { subnet: 2, secondaryIps: 0, inMetadata: true, ipv6s: 1 }).ipv6s).to.deep.equal(['fd00:10:0:2::c']);
  });

  it('dnsmasq: RA and a static DHCPv6 range per bridge only with IPv6; hosts lines carry the first IPv6 address', () => {
    expect(dnsmasqArgvIn([], PATHS).some((x) => x.includes('enable-ra') || x.includes('fd00:'))).to.equal(false);
    const v6 = dnsmasqArgvIn([], PATHS, true);
    expect(v6).to.include('--enable-ra').and.include('--dhcp-range=set:s62,fd00:10:0:2::,static,64,1h');
    const s = state();
    const a = newAttachment(s, null, { subnet: 2, secondaryIps: 1, inMetadata: true, ipv6s: 2 });
    const b = newAttachment(s, null, { subnet: 2, secondaryIps: 0, inMetadata: true });
    expect(hostsFileContent([a, b])).to.equal(`${a.mac},10.0.2.10,[fd00:10:0:2::a],ip-10-0-2-10\n${b.mac},10.0.2.12,ip-10-0-2-12\n`);
  });

  it("source check: IPv6 from the NIC's /64 passes, link-local and :: pass, any other IPv6 source is dropped and counted", () => {
    const r = srcCheckRuleset();
    expect(r).to.include('ether type != { ip, ip6 } accept');
    expect(r).to.include('ip6 saddr { ::, fe80::/10 } accept');
    expect(r).to.include('iifname @ports_br2 ip6 saddr fd00:10:0:2::/64 add @passed6 { iifname . ip6 saddr } accept');
    expect(r).to.include('iifname @ports_br2 ip6 saddr ::/0 add @dropped6 { iifname . ip6 saddr } counter name "drops" drop');
    // The IPv4 drop rule stays IPv4's.
    expect(r).to.include('iifname @ports_br2 ip saddr 0.0.0.0/0 add @dropped { iifname . ip saddr } counter name "drops" drop');
  });
});
