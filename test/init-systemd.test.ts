import { expect } from 'chai';
import { isOurUnit, scopeName, startScopeArgv, unitOfCgroup } from '../src/init/systemd.js';

describe('DHCP clients get a scope of their own (src/init/systemd.ts)', () => {
  it('reads the unit from /proc/PID/cgroup (v2 and v1) and moves only clients in our units', () => {
    expect(unitOfCgroup('0::/system.slice/cloud-hotplug-worker.service\n')).to.equal('cloud-hotplug-worker.service');
    expect(unitOfCgroup('12:pids:/x\n1:name=systemd:/system.slice/networking.service\n')).to.equal('networking.service');
    expect(unitOfCgroup('0::/user.slice/user-0.slice/session-3.scope')).to.equal('session-3.scope');
    expect(unitOfCgroup('0::/')).to.equal(null);
    expect(unitOfCgroup('')).to.equal(null);
    expect(isOurUnit('cloud-hotplug-worker.service')).to.equal(true);
    expect(isOurUnit('cloud-hotplug-replay.service')).to.equal(true);
    expect(isOurUnit('cloud-hotplug-daemon.service')).to.equal(true);
    expect(isOurUnit('networking.service')).to.equal(false);
    expect(isOurUnit('session-3.scope')).to.equal(false);
    expect(isOurUnit('dhcp-client-ens5-481.scope'), 'already moved').to.equal(false);
    expect(isOurUnit(null)).to.equal(false);
  });

  it('names the scope after the interface, escaping what unit names do not allow', () => {
    expect(scopeName('ens5', 481)).to.equal('dhcp-client-ens5-481.scope');
    expect(scopeName('eth0.100', 7)).to.equal('dhcp-client-eth0.100-7.scope');
    expect(scopeName('a:b@c', 1)).to.equal('dhcp-client-a\\x3ab\\x40c-1.scope');
  });

  it('asks systemd for a transient scope holding exactly that PID, collected when it empties', () => {
    const a = startScopeArgv('dhcp-client-ens5-481.scope', 481, 'DHCP client for ens5');
    expect(a.slice(0, 8)).to.deep.equal(['call', '--quiet', 'org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager', 'StartTransientUnit', 'ssa(sv)a(sa(sv))', 'dhcp-client-ens5-481.scope']);
    expect(a.slice(8)).to.deep.equal(['fail', '3', 'Description', 's', 'DHCP client for ens5', 'PIDs', 'au', '1', '481', 'CollectMode', 's', 'inactive-or-failed', '0']);
  });
});
