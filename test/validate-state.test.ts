import { expect } from 'chai';
import { expectedEni, type ExpectedNic } from './support/state.js';

const nic = (d: number, ips: string[]): ExpectedNic => ({ ifname: `eth${d}`, mac: `02:00:00:00:00:1${d}`, deviceNumber: d, ips, prefixlen: 24, cidr: `10.0.${d}.0/24`, gateway: `10.0.${d}.1` });

describe('reliability harness: the ENI cloud-init 22.4 renders from Ec2 metadata', () => {
  it('route metric 100*(device-number+1) on each NIC when there are several; none for a single NIC (cloud-init drops it)', () => {
    expect(expectedEni([nic(0, ['10.0.0.10'])]).stanzas).to.deep.equal(['lo inet loopback', 'eth0 inet dhcp']);
    expect(expectedEni([nic(0, ['10.0.0.10']), nic(2, ['10.0.2.10', '10.0.2.11'])]).stanzas).to.deep.equal([
      'lo inet loopback',
      'eth0 inet dhcp [metric 100]',
      'eth2 inet dhcp [metric 300]',
      'alias eth2 inet static [address 10.0.2.11/24]',
    ]);
  });
});
