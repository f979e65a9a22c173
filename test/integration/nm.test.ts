/**
 * NetworkManager in the lab (`lab up --stack nm`): udevd, a system D-Bus and NetworkManager in the
 * instance, cloud-init with the network-manager renderer and activator, our udev hook installed.
 * Hot-add, policy routing via NM's own lease gateway, NM's automatic profile kept out, NM restart /
 * reapply / re-activation keeping our routing, hot-remove leaving nothing.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lab, ipJson, ourRouting, hotplug, sh, readIn, waitFor, labFixture, waitRecord, assertLabGone, instancePids, CLI, ROOT } from './helpers.js';
import { expectStackHotAdd } from './stack-hot-add.js';
import { cloudInitConnection } from '../../src/stack/nm-parse.js';
import { startRun } from '../../scripts/results/record.js';
import { writeLabStackResults } from './stack-results.js';

const NAME = 't-nm';
const TABLE = 10001;

const ipj = (args: string[]) => ipJson(NAME, args);
const ours = () => ourRouting(NAME, TABLE);

/** Active NM profiles as "NAME:DEVICE". */
async function active(): Promise<string[]> {
  return (await sh(NAME, ['nmcli', '-t', '-f', 'NAME,DEVICE', 'connection', 'show', '--active'])).trim().split('\n').filter(Boolean).sort();
}

/** DHCP exchanges the lab's dnsmasq saw from a MAC (DISCOVERs: one per client start). */
function discovers(mac: string): number {
  const log = readFileSync(lab.labPaths(NAME).dnsmasqLog, 'utf8');
  return log.split('\n').filter((l) => l.includes('DHCPDISCOVER') && l.includes(mac)).length;
}

describe('NetworkManager stack in the lab (t-nm: NM + D-Bus in the instance, cloud-init network-manager renderer and activator)', function () {
  const fx = labFixture(NAME, { stack: 'nm', install: true, config: 'retry:\n  budget_seconds: 6\n' });
  let nic: lab.NicInfo;
  let daemon: number | undefined;
  let logDir = '';
  const run = startRun(['test/results']);

  before(async () => {
    logDir = mkdtempSync(join(tmpdir(), 't-nm-'));
    await fx.boot();
  });
  after(async function () {
    const file = writeLabStackResults('network-manager', run, this.test?.parent);
    if (file) console.log(`      results: ${file}${run.clean ? '' : ' (DIRTY tree)'}`);
    if (daemon) {
      try {
        process.kill(daemon, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    rmSync(logDir, { recursive: true, force: true });
    await fx.teardown();
    expect(await assertLabGone(NAME)).to.deep.equal([]);
  });

  it('boot: cloud-init rendered eth0 as a keyfile and NM brought it up: one active profile, cloud-init\'s, no dhclient', async () => {
    expect(await active()).to.deep.equal(['cloud-init eth0:eth0', 'lo:lo']);
    expect(await readIn(NAME, `/etc/NetworkManager/system-connections/${cloudInitConnection('eth0').file}`)).to.include('[ipv4]\nmethod=auto');
    expect(await instancePids(NAME, (argv) => /(^|\/)dhclient$/.test(argv[0]!))).to.deep.equal([]);
  });

  it('`hotplug status` says renderer network-manager, activator NetworkManagerActivator, stack network-manager', async () => {
    const r = await hotplug(NAME, ['status', '--json', '--live']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout).network).to.deep.include({ renderer: 'network-manager', activator: 'NetworkManagerActivator', stack: 'network-manager' });
  });

  it('hot-add: DHCP address and both secondary IPs, policy rules and table routes via the gateway of NM\'s lease, one profile, one DHCP exchange', async () => {
    nic = await expectStackHotAdd(NAME, TABLE);
    expect(await active()).to.deep.equal([`cloud-init eth0:eth0`, `cloud-init ${nic.ifname}:${nic.ifname}`, 'lo:lo'].sort());
    expect((await sh(NAME, ['nmcli', '-t', '-f', 'NAME', 'connection', 'show'])).split('\n').filter((l) => l.startsWith('Wired connection'))).to.deep.equal([]);
    expect(discovers(nic.mac), 'DHCP exchanges from the new NIC').to.equal(1);
  });

  it("the primary keeps the main table's default route: the secondary's has the metadata's higher metric (cloud-init 22.4.2 leaves it out of keyfiles)", async () => {
    const defaults = (await ipj(['-4', 'route', 'show', 'default'])).map((r) => ({ dev: r.dev as string, metric: Number(r.metric ?? 0) }));
    const m0 = defaults.find((d) => d.dev === 'eth0')!.metric;
    const m1 = defaults.find((d) => d.dev === nic.ifname)!.metric;
    expect(m0, JSON.stringify(defaults)).to.be.lessThan(m1);
    expect(await readIn(NAME, `/etc/NetworkManager/system-connections/${cloudInitConnection(nic.ifname).file}`)).to.match(/\nroute-metric=\d+\n/);
  });

  it('every address answers a client in another subnet, each reply leaving by its own NIC (the cloud\'s source check drops nothing)', async () => {
    await lab.resetSourceCheck({ name: NAME });
    const eth0 = (await ipj(['-4', 'addr', 'show', 'dev', 'eth0']))[0]!.addr_info[0].local as string;
    for (const ip of [eth0, ...nic.ips]) expect((await lab.clientPing(ip, { name: NAME, count: 2, waitMs: 1500 })).received, `ping ${ip}`).to.be.greaterThan(0);
    const sc = await lab.sourceCheck({ name: NAME });
    expect(sc.drops, JSON.stringify(sc.dropped)).to.equal(0);
    for (const ip of nic.ips) expect(sc.passed.filter((f) => f.saddr === ip).map((f) => f.ifname)).to.deep.equal([nic.ifname]);
  });

  it('`nmcli device reapply`, `nmcli connection reload` and a NetworkManager restart leave our rules and routes as they were', async () => {
    const before = await ours();
    await sh(NAME, ['nmcli', 'device', 'reapply', nic.ifname]);
    await sh(NAME, ['nmcli', 'connection', 'reload']);
    expect(await ours()).to.deep.equal(before);
    await lab.restartNetworkManager({ name: NAME, quiet: true });
    expect(await active()).to.deep.equal([`cloud-init eth0:eth0`, `cloud-init ${nic.ifname}:${nic.ifname}`, 'lo:lo'].sort());
    expect(await ours()).to.deep.equal(before);
  });

  it('`nmcli connection up` re-activates the NIC (its addresses go, and the kernel drops our table routes with them): the daemon\'s routing watch restores them; rules stay throughout', async () => {
    const before = await ours();
    const argv = await lab.instanceCommand([process.execPath, CLI, 'daemon'], { name: NAME, cwd: ROOT });
    const fd = openSync(join(logDir, 'daemon.log'), 'a');
    try {
      const c = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      c.unref();
      daemon = c.pid;
    } finally {
      closeSync(fd);
    }
    await waitFor('daemon ready', async () => {
      const r = await hotplug(NAME, ['status', '--json']);
      const d = r.exitCode === 0 ? JSON.parse(r.stdout).daemon : null;
      return d?.running && d.ready ? d : null;
    }, 60_000, 200);
    await sh(NAME, ['nmcli', 'connection', 'up', cloudInitConnection(nic.ifname).id]);
    expect((await ours()).rules).to.deep.equal(before.rules);
    await waitFor('our table routes back', async () => JSON.stringify(await ours()) === JSON.stringify(before), 60_000, 200);
    process.kill(daemon!, 'SIGTERM');
    await waitFor('daemon gone', async () => !existsSync(`/proc/${daemon}`), 15_000);
    daemon = undefined;
  });

  it('hot-remove leaves nothing: keyfile, NM profile, lease, rules, table routes, recorded addresses and interface', async () => {
    const id = cloudInitConnection(nic.ifname);
    await lab.detach(nic.ifname, { name: NAME });
    const rec = await waitRecord(NAME, (r) => r.iface === nic.ifname && r.action === 'remove');
    expect(rec.result).to.equal('removed');
    expect(await readIn(NAME, `/etc/NetworkManager/system-connections/${id.file}`)).to.equal(null);
    expect((await sh(NAME, ['nmcli', '-t', '-f', 'NAME,UUID', 'connection', 'show'])).split('\n').filter((l) => l.includes(id.uuid) || l.includes(nic.ifname))).to.deep.equal([]);
    expect((await sh(NAME, ['ls', '/var/lib/NetworkManager'])).split('\n').filter((f) => f.endsWith(`-${nic.ifname}.lease`))).to.deep.equal([]);
    expect(await ours()).to.deep.equal({ rules: [], routes: [] });
    const known = await readIn(NAME, '/run/cloud-hotplug/known-interfaces.json');
    expect(known ?? '').to.not.include(nic.ifname);
    const rt = await hotplug(NAME, ['routes', '--json']);
    expect(JSON.parse(rt.stdout).rows.filter((r: { text: string }) => r.text.includes(nic.ips[0]!))).to.deep.equal([]);
    expect(await active()).to.deep.equal(['cloud-init eth0:eth0', 'lo:lo']);
  });
});
