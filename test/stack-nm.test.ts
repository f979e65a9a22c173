/** The NetworkManager stack (src/stack/network-manager.ts, nm-parse.ts) against recorded real NM 1.42 outputs (test/fixtures/stack/nm). */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers/run.js';
import { NetworkManagerStack } from '../src/stack/network-manager.js';
import { cloudInitConnection, deviceStateRouter, nmcliDhcp4Router, nmcliField, withRouteMetric } from '../src/stack/nm-parse.js';
import { routeMetrics } from '../src/stack/route-metric.js';
import type { ToolRunner } from '../src/stack/command.js';

const fx = (f: string) => readFileSync(join(ROOT, 'test/fixtures/stack/nm', f), 'utf8');

/** nmcli answering from recorded outputs; `calls` keeps every argv. */
function fakeNmcli(answers: Record<string, { exitCode?: number; stdout?: string }>, calls: string[][] = []): ToolRunner {
  return async (cmd, args) => {
    calls.push([cmd, ...args]);
    const a = answers[args.join(' ')];
    return a ? { exitCode: a.exitCode ?? 0, stdout: a.stdout ?? '', stderr: '' } : { exitCode: 8, stdout: '', stderr: 'Error: NetworkManager is not running.' };
  };
}

describe('NetworkManager stack: parsing recorded nmcli output and NM state files', () => {
  it('the DHCPv4 router from `nmcli -t -f DHCP4 device show`', () => {
    expect(nmcliDhcp4Router(fx('nmcli-t-f-DHCP4-device-show-eth0.txt'))).to.equal('10.0.1.1');
    expect(nmcliDhcp4Router('DHCP4.OPTION[1]:routers = not-an-ip\n')).to.equal(undefined);
    expect(nmcliDhcp4Router('')).to.equal(undefined);
  });

  it('the router from /run/NetworkManager/devices/<ifindex> ([dhcp4] group only)', () => {
    expect(deviceStateRouter(fx('run-NetworkManager-devices-ifindex.txt'))).to.equal('10.0.1.1');
    expect(deviceStateRouter('[device]\ndhcp4.routers=10.9.9.9\n')).to.equal(undefined);
    expect(deviceStateRouter(null)).to.equal(undefined);
  });

  it("NM's internal lease file holds no router (why the stack asks nmcli / the device state instead)", () => {
    expect(fx('internal-lease-eth0.lease')).to.not.match(/ROUTER|routers/);
  });

  it('the active connection from `nmcli -t -f GENERAL.CONNECTION …`', () => {
    expect(nmcliField(fx('nmcli-t-general-eth0.txt'), 'GENERAL.CONNECTION')).to.equal('cloud-init eth0');
    expect(nmcliField('GENERAL.CONNECTION:\n', 'GENERAL.CONNECTION')).to.equal('');
  });

  it("cloud-init's connection id and uuid5 are the ones it wrote (recorded keyfile; eth1's from the same lab)", () => {
    const k = fx('cloud-init-eth0.nmconnection');
    const c = cloudInitConnection('eth0');
    expect(k).to.include(`id=${c.id}\n`).and.include(`uuid=${c.uuid}\n`);
    expect(cloudInitConnection('eth1').uuid).to.equal('3c50eb47-7260-5a6d-801d-bd4f587d6b58');
  });

  it('route-metric goes into [ipv4] of the recorded keyfile; a second pass changes nothing; a wrong one is replaced', () => {
    const once = withRouteMetric(fx('cloud-init-eth0.nmconnection'), 200)!;
    expect(once).to.match(/\[ipv4\]\nmethod=auto\nmay-fail=false\nroute-metric=200\n/);
    expect(once.match(/route-metric/g)).to.have.length(1);
    expect(withRouteMetric(once, 200)).to.equal(null);
    expect(withRouteMetric(once, 300)).to.include('route-metric=300').and.not.include('route-metric=200');
    expect(withRouteMetric(once, -1)).to.equal(null);
  });

  it("route metrics from a v2 config's dhcp4-overrides (Ec2's shape), by the resolved interface name", () => {
    const view = {
      network_config: { version: 2, ethernets: { eth0: { dhcp4: true }, eth1: { dhcp4: true, 'dhcp4-overrides': { 'route-metric': 200 } }, bad: { 'dhcp4-overrides': { 'route-metric': 'x' } } } },
      interfaces: [
        { name: 'eth0', mac: '0a:00:00:00:00:00', id: 'eth0' },
        { name: 'ens6', mac: '0a:00:00:00:00:01', id: 'eth1' },
      ],
    } as never;
    expect([...routeMetrics(view)]).to.deep.equal([['ens6', 200]]);
  });
});

describe('NetworkManager stack: against a scratch root', () => {
  let root: string;
  const keyDir = () => join(root, 'etc/NetworkManager/system-connections');
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'hp-nm-'));
    for (const [n, i] of [['eth0', 2], ['eth1', 3]] as const) {
      mkdirSync(join(root, 'sys/class/net', n), { recursive: true });
      writeFileSync(join(root, 'sys/class/net', n, 'ifindex'), `${i}\n`);
    }
    mkdirSync(keyDir(), { recursive: true });
    mkdirSync(join(root, 'var/lib/NetworkManager'), { recursive: true });
    mkdirSync(join(root, 'run/NetworkManager/devices'), { recursive: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('renderedButDown: a keyfile whose profile is not the active one (none, or NM\'s "Wired connection 1"); nothing when NM does not answer', async () => {
    for (const n of ['eth0', 'eth1']) writeFileSync(join(keyDir(), cloudInitConnection(n).file), fx('cloud-init-eth0.nmconnection'));
    const answers = {
      '-t -f GENERAL.CONNECTION device show eth0': { stdout: fx('nmcli-t-general-eth0.txt') },
      '-t -f GENERAL.CONNECTION device show eth1': { stdout: 'GENERAL.CONNECTION:Wired connection 1\n' },
    };
    expect(await new NetworkManagerStack(root, fakeNmcli(answers)).renderedButDown(['eth0', 'eth1', 'eth9'])).to.deep.equal(['eth1']);
    expect(await new NetworkManagerStack(root, fakeNmcli({})).renderedButDown(['eth0', 'eth1'])).to.deep.equal([]);
  });

  it('leaseGateway: nmcli first; the device state file when NM does not answer; nothing for a bad name', async () => {
    const s = new NetworkManagerStack(root, fakeNmcli({ '-t -f DHCP4 device show eth0': { stdout: fx('nmcli-t-f-DHCP4-device-show-eth0.txt') } }));
    expect(await s.leaseGateway('eth0')).to.equal('10.0.1.1');
    writeFileSync(join(root, 'run/NetworkManager/devices/3'), fx('run-NetworkManager-devices-ifindex.txt').replace(/10\.0\.1\.1\b/g, '10.0.2.1'));
    expect(await s.leaseGateway('eth1')).to.equal('10.0.2.1');
    expect(await s.leaseGateway('../x')).to.equal(undefined);
  });

  it('scrub removes the NIC\'s keyfile and lease files, leaves other NICs\' alone', async () => {
    writeFileSync(join(keyDir(), 'cloud-init-eth1.nmconnection'), 'x');
    writeFileSync(join(keyDir(), 'cloud-init-eth0.nmconnection'), 'x');
    const lib = join(root, 'var/lib/NetworkManager');
    writeFileSync(join(lib, `internal-${cloudInitConnection('eth1').uuid}-eth1.lease`), fx('internal-lease-eth0.lease'));
    writeFileSync(join(lib, `internal-${cloudInitConnection('eth0').uuid}-eth0.lease`), 'x');
    writeFileSync(join(lib, 'timestamps'), 'x');
    const r = await new NetworkManagerStack(root, fakeNmcli({})).scrub('eth1');
    expect(r.files).to.equal(2);
    expect(readdirSync(keyDir())).to.deep.equal(['cloud-init-eth0.nmconnection']);
    expect(readdirSync(lib).sort()).to.deep.equal([`internal-${cloudInitConnection('eth0').uuid}-eth0.lease`, 'timestamps']);
  });

  it('rendered(): the metric from the config goes into the keyfile cloud-init just wrote (mode 0600 kept)', async () => {
    const f = join(keyDir(), 'cloud-init-eth1.nmconnection');
    writeFileSync(f, fx('cloud-init-eth0.nmconnection'), { mode: 0o600 });
    const view = { network_config: { version: 2, ethernets: { eth1: { dhcp4: true, 'dhcp4-overrides': { 'route-metric': 200 } } } }, interfaces: [{ name: 'eth1', mac: null, id: 'eth1' }] } as never;
    await new NetworkManagerStack(root, fakeNmcli({})).rendered(view);
    expect(readFileSync(f, 'utf8')).to.include('route-metric=200');
    expect(statSync(f).mode & 0o777).to.equal(0o600);
    expect(existsSync(join(keyDir(), 'cloud-init-eth0.nmconnection'))).to.equal(false);
  });
});
