import { expect } from 'chai';
import { globMatch, isCandidate, type FilterConfig } from '../src/pipeline/filter.js';
import { defaultConfig } from '../src/config.js';

const dflt: FilterConfig = defaultConfig.filter;
const none: FilterConfig = { allow_drivers: [], deny_drivers: [], allow_names: [], deny_names: [] };

describe('globMatch', () => {
  const cases: Array<[string, string, boolean]> = [
    ['docker*', 'docker0', true], ['docker*', 'docker', true], ['docker*', 'xdocker0', false],
    ['eth?', 'eth1', true], ['eth?', 'eth10', false], ['eth?', 'eth', false],
    ['*', '', true], ['', '', true], ['', 'a', false], ['a*b*c', 'aXbYc', true], ['a*b*c', 'aXbY', false],
    ['*.1', 'flannel.1', true], ['br-*', 'br0', false], ['lo', 'lo', true], ['lo', 'lo0', false],
    ['*a*a*a*a*b', 'a'.repeat(40), false], ['v*h?', 'veth0', true], ['a.b', 'aXb', false],
  ];
  for (const [p, s, want] of cases) {
    it(`${JSON.stringify(p)} ${want ? 'matches' : 'does not match'} ${JSON.stringify(s)}`, () => expect(globMatch(p, s)).to.equal(want));
  }
});

describe('isCandidate', () => {
  it('accepts cloud NICs, including lab veths named ethN', () => {
    for (const ifname of ['eth0', 'eth1', 'ens5', 'enp0s3', 'enX0']) expect(isCandidate({ ifname, driver: 'veth' }, dflt)).to.deep.equal({ ok: true });
    expect(isCandidate({ ifname: 'ens6', driver: 'ena' }, dflt)).to.deep.equal({ ok: true });
    expect(isCandidate({ ifname: 'ens6' }, dflt)).to.deep.equal({ ok: true });
  });

  it('rejects loopback always, even if allowed by name', () => {
    const r = isCandidate({ ifname: 'lo' }, { ...none, allow_names: ['*'] });
    expect(r).to.deep.equal({ ok: false, reason: 'loopback' });
  });

  it('rejects container, bridge and tunnel interfaces by name, saying which pattern', () => {
    for (const ifname of ['docker0', 'veth1a2b3c', 'br-0f3c', 'virbr0', 'cni0', 'flannel.1', 'cali12ab', 'weave', 'kube-ipvs0', 'tun0', 'tap3', 'vxlan.calico']) {
      const r = isCandidate({ ifname, driver: 'veth' }, dflt);
      expect(r.ok, ifname).to.equal(false);
    }
    expect(isCandidate({ ifname: 'docker0' }, dflt)).to.deep.equal({ ok: false, reason: 'name docker0 matches deny_names pattern "docker*"' });
  });

  it('allow_names is an exception to deny_names, not a whitelist', () => {
    const f = { ...dflt, allow_names: ['tap7'] };
    expect(isCandidate({ ifname: 'tap7' }, f).ok).to.equal(true);
    expect(isCandidate({ ifname: 'tap8' }, f).ok).to.equal(false);
    expect(isCandidate({ ifname: 'eth3' }, f).ok).to.equal(true);
  });

  it('applies driver deny and allow lists (globs)', () => {
    expect(isCandidate({ ifname: 'eth1', driver: 'virtio_net' }, { ...none, deny_drivers: ['virtio*'] }))
      .to.deep.equal({ ok: false, reason: 'driver virtio_net matches deny_drivers pattern "virtio*"' });
    const allow = { ...none, allow_drivers: ['ena', 'mlx5*'] };
    expect(isCandidate({ ifname: 'eth1', driver: 'mlx5_core' }, allow).ok).to.equal(true);
    expect(isCandidate({ ifname: 'eth1', driver: 'ixgbevf' }, allow)).to.deep.equal({ ok: false, reason: 'driver ixgbevf not in allow_drivers' });
    expect(isCandidate({ ifname: 'eth1', driver: 'ena' }, { ...allow, deny_drivers: ['ena'] }).ok).to.equal(false);
  });

  it('an unknown driver fails a non-empty allow list on add but not on remove', () => {
    const allow = { ...none, allow_drivers: ['ena'] };
    expect(isCandidate({ ifname: 'eth1', action: 'add' }, allow).ok).to.equal(false);
    expect(isCandidate({ ifname: 'eth1', action: 'remove' }, allow).ok).to.equal(true);
    expect(isCandidate({ ifname: 'docker0', action: 'remove' }, dflt).ok).to.equal(false); // names still apply
  });
});
