/** The systemd-networkd stack (src/stack/networkd.ts, networkd-parse.ts) against recorded real systemd 252 state files (test/fixtures/stack/networkd). */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers/run.js';
import { NetworkdStack } from '../src/stack/networkd.js';
import { networkdConfigured, networkdLeaseRouter } from '../src/stack/networkd-parse.js';
import { chooseStack, stackKind } from '../src/stack/index.js';
import { defaultDeps } from '../src/pipeline/deps.js';
import { defaultConfig } from '../src/config.js';

const fx = (f: string) => readFileSync(join(ROOT, 'test/fixtures/stack/networkd', f), 'utf8');
const noTool = async () => ({ exitCode: 1, stdout: '', stderr: 'not here' });

describe('networkd stack: parsing recorded state files', () => {
  it('the router of a lease (ROUTER=)', () => {
    expect(networkdLeaseRouter(fx('lease-ifindex.txt'))).to.equal('10.0.3.1');
    expect(networkdLeaseRouter('ROUTER=10.0.3.1 10.0.3.2\n')).to.equal('10.0.3.1');
    expect(networkdLeaseRouter('ADDRESS=10.0.3.10\n')).to.equal(undefined);
    expect(networkdLeaseRouter(null)).to.equal(undefined);
  });

  it('configured with a given file: the configured link yes, the unmanaged one no, another file no', () => {
    const file = '/etc/systemd/network/10-cloud-init-eth2.network';
    expect(networkdConfigured(fx('link-ifindex.txt'), file)).to.equal(true);
    expect(networkdConfigured(fx('link-ifindex.txt'), '/run/systemd/network/10-netplan-eth2.network')).to.equal(false);
    expect(networkdConfigured(fx('link-unmanaged-ifindex.txt'), file)).to.equal(false);
  });
});

describe('networkd stack: against a scratch root', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'hp-nd-'));
    for (const [n, i] of [['eth1', 4], ['eth2', 5]] as const) {
      mkdirSync(join(root, 'sys/class/net', n), { recursive: true });
      writeFileSync(join(root, 'sys/class/net', n, 'ifindex'), `${i}\n`);
    }
    for (const d of ['etc/systemd/network', 'run/systemd/network', 'run/systemd/netif/leases', 'run/systemd/netif/links']) mkdirSync(join(root, d), { recursive: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('leaseGateway reads leases/<ifindex>', async () => {
    writeFileSync(join(root, 'run/systemd/netif/leases/5'), fx('lease-ifindex.txt'));
    const s = new NetworkdStack('networkd', root, noTool);
    expect(await s.leaseGateway('eth2')).to.equal('10.0.3.1');
    expect(await s.leaseGateway('eth1')).to.equal(undefined);
    expect(await s.leaseGateway('eth9')).to.equal(undefined);
  });

  it('renderedButDown: a rendered .network that networkd has not configured the link with; nothing while networkd does not run', async () => {
    writeFileSync(join(root, 'etc/systemd/network/10-cloud-init-eth1.network'), '[Match]\nName=eth1\n');
    writeFileSync(join(root, 'etc/systemd/network/10-cloud-init-eth2.network'), '[Match]\nName=eth2\n');
    writeFileSync(join(root, 'run/systemd/netif/links/4'), fx('link-unmanaged-ifindex.txt'));
    writeFileSync(join(root, 'run/systemd/netif/links/5'), fx('link-ifindex.txt'));
    const s = new NetworkdStack('networkd', root, noTool);
    expect(await s.renderedButDown(['eth1', 'eth2', 'eth3'])).to.deep.equal(['eth1']);
    rmSync(join(root, 'run/systemd/netif'), { recursive: true });
    expect(await s.renderedButDown(['eth1', 'eth2'])).to.deep.equal([]);
  });

  it("scrub removes the NIC's .network files (cloud-init's and netplan's) and the lease/state of links that are gone, nothing of present ones", async () => {
    writeFileSync(join(root, 'etc/systemd/network/10-cloud-init-eth3.network'), 'x');
    writeFileSync(join(root, 'run/systemd/network/10-netplan-eth3.network'), 'x');
    writeFileSync(join(root, 'etc/systemd/network/10-cloud-init-eth2.network'), 'x');
    writeFileSync(join(root, 'run/systemd/netif/leases/5'), fx('lease-ifindex.txt'));
    writeFileSync(join(root, 'run/systemd/netif/leases/6'), fx('lease-ifindex.txt')); // eth3's, gone
    writeFileSync(join(root, 'run/systemd/netif/links/6'), fx('link-ifindex.txt'));
    const r = await new NetworkdStack('netplan', root, noTool).scrub('eth3');
    expect(r.files).to.equal(4);
    expect(readdirSync(join(root, 'etc/systemd/network'))).to.deep.equal(['10-cloud-init-eth2.network']);
    expect(readdirSync(join(root, 'run/systemd/network'))).to.deep.equal([]);
    expect(readdirSync(join(root, 'run/systemd/netif/leases'))).to.deep.equal(['5']);
    expect(existsSync(join(root, 'run/systemd/netif/links/6'))).to.equal(false);
  });
});

describe('chooseStack: from the renderer and activator cloud-init reports', () => {
  it('the activator decides, else the renderer; no report or an unknown one: ifupdown', () => {
    expect(stackKind({ renderer: 'network-manager', activator: 'NetworkManagerActivator' })).to.equal('network-manager');
    expect(stackKind({ renderer: 'netplan', activator: 'NetplanActivator' })).to.equal('netplan');
    expect(stackKind({ renderer: 'networkd', activator: 'NetworkdActivator' })).to.equal('networkd');
    expect(stackKind({ renderer: 'eni', activator: 'IfUpDownActivator' })).to.equal('ifupdown');
    expect(stackKind({ renderer: 'networkd', activator: null })).to.equal('networkd');
    expect(stackKind({ renderer: 'sysconfig', activator: null })).to.equal('ifupdown');
    expect(stackKind(null)).to.equal('ifupdown');
    expect(chooseStack({ renderer: 'network-manager', activator: 'NetworkManagerActivator' }).name).to.equal('network-manager');
    expect(chooseStack({ renderer: 'netplan', activator: 'NetplanActivator' }).name).to.equal('netplan');
    expect(chooseStack(undefined).name).to.equal('ifupdown');
  });
});

describe('defaultDeps: the stack is chosen from the report once there is one', () => {
  it('a stack chosen before any open reported (null) is replaced when a report arrives, then kept', () => {
    const bridge = { stackReport: null as null | { renderer: string | null; activator: string | null }, withBridge: async () => { throw new Error('unused'); } };
    const deps = defaultDeps(() => defaultConfig, bridge as never);
    expect(deps.stack.name).to.equal('ifupdown');
    bridge.stackReport = { renderer: 'network-manager', activator: 'NetworkManagerActivator' };
    const nm = deps.stack;
    expect(nm.name).to.equal('network-manager');
    bridge.stackReport = { renderer: 'eni', activator: 'IfUpDownActivator' };
    expect(deps.stack).to.equal(nm);
  });
});
