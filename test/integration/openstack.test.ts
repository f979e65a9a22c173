/**
 * OpenStack end to end in the lab (`lab up --cloud openstack`): the instance is a Nova guest
 * (DMI "OpenStack Nova"), cloud-init caches DataSourceOpenStackLocal from the metadata service,
 * and ports come with DHCP or static fixed IPs in network_data.json. Real cloud-init, udevd,
 * dnsmasq; addresses, routing and reachability read back the way a person would check them.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lab, hotplug, readIn, waitFor, labFixture, waitRecord, assertLabGone, instancePids, type EventRec, startSupervisedDaemon, stopSupervisor } from './helpers.js';

const TABLE_BASE = 10000;
const PATH_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
const ENI = '/etc/network/interfaces.d/50-cloud-init';

/** `ip -N -json -4 ARGS` in the instance's netns, from the host. */
async function ipj(name: string, args: string[]): Promise<Record<string, unknown>[]> {
  const r = await execa('ip', ['-n', `chl-${name}-inst`, '-N', '-json', '-4', ...args]);
  return JSON.parse(r.stdout || '[]') as Record<string, unknown>[];
}

interface View {
  rules: string[];
  routes: string[];
  addrs: string[];
}

async function view(name: string): Promise<View> {
  const [rules, routes, addrs] = await Promise.all([ipj(name, ['rule', 'show']), ipj(name, ['route', 'show', 'table', 'all']), ipj(name, ['addr', 'show'])]);
  return {
    rules: rules.filter((r) => r.src).map((r) => `from ${r.src} lookup ${r.table}`),
    routes: routes.filter((r) => r.table !== '255').map((r) => `table ${r.table ?? 254} ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev}`),
    addrs: addrs.flatMap((l) => ((l.addr_info as { local: string }[]) ?? []).map((a) => `${l.ifname} ${a.local}`)),
  };
}

/** Configured: every address on the NIC and, for a NIC with a table, a rule from each into it. */
async function waitConfigured(name: string, nic: { ifname: string; ips: string[] }, table?: number, timeoutMs = 60_000): Promise<void> {
  await waitFor(`${nic.ifname} configured with ${nic.ips.join(',')}`, async () => {
    const v = await view(name);
    if (!nic.ips.every((ip) => v.addrs.includes(`${nic.ifname} ${ip}`))) return false;
    return table === undefined || nic.ips.every((ip) => v.rules.includes(`from ${ip} lookup ${table}`));
  }, timeoutMs, 100);
}

/** The client (another subnet) reaches every address, and no reply was dropped by the cloud's source check. */
async function expectReachable(name: string, ips: string[]): Promise<void> {
  await lab.resetSourceCheck({ name });
  const got: Record<string, boolean> = {};
  for (const ip of ips) got[ip] = (await lab.clientPing(ip, { name, count: 2, waitMs: 1500 })).received > 0;
  expect(got).to.deep.equal(Object.fromEntries(ips.map((ip) => [ip, true])));
  const sc = await lab.sourceCheck({ name });
  expect(sc.drops, `dropped: ${JSON.stringify(sc.dropped)}`).to.equal(0);
}

const networkDataReads = (s: lab.ImdsStats) => Object.entries(s.byPath).filter(([p]) => p.endsWith('/network_data.json')).reduce((n, [, c]) => n + c, 0);
const fullCrawls = (s: lab.ImdsStats) => Object.entries(s.byPath).filter(([p]) => p.endsWith('/meta_data.json')).reduce((n, [, c]) => n + c, 0);

async function status(name: string): Promise<Record<string, any>> {
  const r = await hotplug(name, ['status', '--json']);
  expect(r.exitCode, r.stderr).to.equal(0);
  return JSON.parse(r.stdout) as Record<string, any>;
}

describe('OpenStack metadata service with the daemon (lab t-os): DHCP and static ports, policy routing, live fixed IPs, removal', function () {
  this.timeout(300_000);
  const fx = labFixture('t-os', { cloud: 'openstack', install: true, config: 'retry:\n  budget_seconds: 20\ndaemon:\n  poll_interval_seconds: 2\n' });
  const name = fx.name;
  let logDir = '';
  let supervisor: number | undefined;
  let eth0Ip = '';
  let dhcpPort: lab.NicInfo;
  let staticPort: lab.NicInfo;

  before(async function () {
    logDir = mkdtempSync(join(tmpdir(), 't-os-'));
    await fx.boot();
    eth0Ip = (await lab.status({ name })).nics.find((n) => n.ifname === 'eth0')!.ips[0]!;
    supervisor = await startSupervisedDaemon(name, join(logDir, 'daemon.log'));
    await waitFor('daemon ready', async () => {
      const d = (await status(name)).daemon;
      return d?.running && d.ready && d.bridge?.alive;
    }, 30_000, 200);
  });

  after(async function () {
    await stopSupervisor(supervisor);
    rmSync(logDir, { recursive: true, force: true });
    await fx.teardown();
    expect(await assertLabGone(name)).to.deep.equal([]);
  });

  it('the instance is a Nova guest: cloud-init cached DataSourceOpenStackLocal, hotplug enabled, status names the metadata service', async () => {
    const s = await status(name);
    expect(s.datasource, JSON.stringify(s)).to.equal('DataSourceOpenStackLocal');
    expect(s.metadata.source).to.match(/^OpenStack metadata service http:\/\/169\.254\.169\.254/);
    expect(s.metadata.static).to.equal(false);
    const q = await hotplug(name, ['query']);
    expect(q.stdout.trim()).to.equal('enabled');
  });

  it('hot-add a DHCP port and a static port, each with a second fixed IP → addresses from network_data.json, a table per port with its gateway, every address reachable', async () => {
    dhcpPort = await lab.attach({ name, ips: 1, subnet: 2 });
    staticPort = await lab.attach({ name, ips: 1, subnet: 3, static: true });
    for (const p of [dhcpPort, staticPort]) {
      const rec = await waitRecord(name, (r) => r.mac === p.mac && r.action === 'add');
      expect(rec.result, JSON.stringify(rec)).to.equal('configured');
      await waitConfigured(name, p, TABLE_BASE + (p === dhcpPort ? 1 : 2));
    }
    const v = await view(name);
    // The static port's gateway is network_data.json's route; no second default route in main.
    expect(v.routes).to.include.members([`table 10001 default via ${dhcpPort.gateway} dev ${dhcpPort.ifname}`, `table 10002 default via ${staticPort.gateway} dev ${staticPort.ifname}`]);
    expect(v.routes.filter((r) => r.startsWith('table 254 default'))).to.deep.equal(['table 254 default via 10.0.1.1 dev eth0']);
    await expectReachable(name, [eth0Ip, ...dhcpPort.ips, ...staticPort.ips]);
  });

  it('a fixed IP added to a live port (no device event) → the daemon applies it: address, rule, reachable', async () => {
    const [ip] = await lab.addIp(staticPort.ifname, 1, { name });
    staticPort.ips.push(ip!);
    await waitConfigured(name, staticPort, TABLE_BASE + 2, 30_000);
    await expectReachable(name, [ip!]);
    // Seen by the probe (network_data.json, one request, compared by hash), not by a periodic full re-read.
    const probe = (await status(name)).daemon.poller.probe;
    expect(probe).to.include({ enabled: true, supported: true });
    expect(probe.changes).to.be.at.least(1);
  });

  it('hot-remove → no stanza, address, rule, route, routing state or DHCP client of either port remains', async () => {
    for (const p of [dhcpPort, staticPort]) {
      await lab.detach(p.ifname, { name });
      const rec = await waitRecord(name, (r) => r.mac === p.mac && r.action === 'remove');
      expect(rec.result, JSON.stringify(rec)).to.equal('removed');
    }
    const eni = (await readIn(name, ENI)) ?? '';
    for (const p of [dhcpPort, staticPort]) {
      expect(eni, 'rendered stanzas').to.not.include(`iface ${p.ifname} `);
      expect(await instancePids(name, (a) => a[0]!.endsWith('dhclient') && a.includes(p.ifname)), 'dhclient').to.deep.equal([]);
    }
    const v = await view(name);
    expect(v.rules.filter((r) => / lookup 1000[12]$/.test(r)), 'rules').to.deep.equal([]);
    expect(v.routes.filter((r) => / 1000[12] /.test(r)), 'routes').to.deep.equal([]);
    expect(v.addrs.filter((a) => !a.startsWith('lo ') && !a.startsWith('eth0 ')), 'addresses').to.deep.equal([]);
    const state = JSON.parse((await readIn(name, '/run/cloud-hotplug/routing-state.json')) ?? '{}') as { nics?: Record<string, unknown> };
    expect(Object.keys(state.nics ?? {})).to.not.include.members([dhcpPort.mac, staticPort.mac]);
    await expectReachable(name, [eth0Ip]);
  });
});

describe('OpenStack metadata service, one-shot workers (lab t-os-ev): lag, faults, a storm, the first port replaced', function () {
  this.timeout(300_000);
  const fx = labFixture('t-os-ev', { cloud: 'openstack', install: true, config: 'retry:\n  budget_seconds: 30\n' });
  const name = fx.name;
  fx.hooks({ gone: true });

  it('a port whose metadata lags 1.5 s → configured, waiting with one-request probes of network_data.json, not full crawls', async () => {
    await lab.imdsResetStats({ name });
    const nic = await lab.attach({ name, lagSeconds: 1.5 });
    const rec = await waitRecord(name, (r) => r.mac === nic.mac && r.action === 'add');
    expect(rec.result, JSON.stringify(rec)).to.equal('configured');
    expect(rec.probes, 'probes').to.be.greaterThan(0);
    expect(rec.crawls, 'crawls').to.be.at.most(3);
    expect(fullCrawls(await lab.imdsStats({ name })), 'full crawls (meta_data.json)').to.equal(0);
    await waitConfigured(name, nic, TABLE_BASE + nic.deviceNumber);
    await lab.detach(nic.ifname, { name });
    await waitRecord(name, (r) => r.mac === nic.mac && r.action === 'remove');
  });

  it('a port attached while the metadata service answers 500 for 3 s → configured once it recovers', async () => {
    const f0 = (await lab.imdsStats({ name })).faultsInjected;
    await lab.setFault({ mode: 'http500' }, { name });
    const nic = await lab.attach({ name, ips: 1 });
    await new Promise((r) => setTimeout(r, 3000));
    const f1 = (await lab.clearFault({ name })).faultsInjected;
    expect(f1 - f0, 'requests that got a 500').to.be.greaterThan(0);
    const rec = await waitRecord(name, (r) => r.mac === nic.mac && r.action === 'add');
    expect(rec.result, JSON.stringify(rec)).to.equal('configured');
    await waitConfigured(name, nic, TABLE_BASE + nic.deviceNumber);
    await expectReachable(name, nic.ips);
    await lab.detach(nic.ifname, { name });
    await waitRecord(name, (r) => r.mac === nic.mac && r.action === 'remove');
  });

  it('a storm of 8 ports → all configured through a constant number of metadata reads (not one crawl per port)', async () => {
    await lab.imdsResetStats({ name });
    const nics = await lab.attachMany(8, { name });
    const recs: EventRec[] = [];
    for (const n of nics) recs.push(await waitRecord(name, (r) => r.mac === n.mac && r.action === 'add', 120_000));
    expect(recs.map((r) => r.result)).to.deep.equal(nics.map(() => 'configured'));
    const s = await lab.imdsStats({ name });
    expect(fullCrawls(s), 'full crawls').to.equal(0);
    expect(networkDataReads(s), 'network_data.json reads for 8 ports').to.be.at.most(4);
    for (const n of nics) await waitConfigured(name, n, TABLE_BASE + n.deviceNumber);
    for (const n of nics) await lab.detach(n.ifname, { name });
    for (const n of nics) await waitRecord(name, (r) => r.mac === n.mac && r.action === 'remove');
  });

  it('the first port replaced by one with a new MAC (cloud-init #3463) → the new port is the primary: main default route, reachable; the old stanza gone; status still works', async () => {
    const old = (await lab.status({ name })).nics.find((n) => n.ifname === 'eth0')!;
    await lab.detach('eth0', { name });
    // (the device is gone before udev can name its MAC: the record has the name)
    const gone = await waitRecord(name, (r) => (r.mac === old.mac || r.iface === 'eth0') && r.action === 'remove');
    expect(gone.result, JSON.stringify(gone)).to.equal('removed');
    const nic = await lab.attach({ name, subnet: 1 });
    const rec = await waitRecord(name, (r) => r.mac === nic.mac && r.action === 'add');
    expect(rec.result, JSON.stringify(rec)).to.equal('configured');
    expect(rec.reason ?? '', 'the record says it is the new primary').to.match(/primary/);
    await waitConfigured(name, nic);
    const v = await view(name);
    expect(v.routes.filter((r) => r.startsWith('table 254 default'))).to.deep.equal([`table 254 default via 10.0.1.1 dev ${nic.ifname}`]);
    expect(v.rules.filter((r) => r.includes(nic.ips[0]!)), 'the primary gets no rules').to.deep.equal([]);
    const eni = (await readIn(name, ENI)) ?? '';
    expect(eni).to.not.include('iface eth0 ');
    expect(eni).to.include(`iface ${nic.ifname} inet dhcp`);
    await expectReachable(name, nic.ips);
    const s = await status(name);
    expect(s.datasource).to.equal('DataSourceOpenStackLocal');
    const ex = await lab.exec(['cloud-init', 'status'], { name, cleanEnv: true, env: PATH_ENV });
    expect(ex.stdout).to.match(/done/);
  });
});

describe('ConfigDrive (lab t-cd: config-2 files in the seed dir, written once at boot)', function () {
  this.timeout(300_000);
  const fx = labFixture('t-cd', { cloud: 'configdrive', install: true, config: 'retry:\n  budget_seconds: 60\n' });
  const name = fx.name;
  fx.hooks({ gone: true });

  it('cloud-init cached DataSourceConfigDrive; status says the drive is static', async () => {
    const s = await status(name);
    expect(s.datasource).to.equal('DataSourceConfigDrive');
    expect(s.metadata).to.deep.equal({ source: 'config drive /var/lib/cloud/seed/config_drive', static: true });
    const text = await hotplug(name, ['status']);
    expect(text.stdout).to.match(/static \(a config drive is written once at boot/);
  });

  it('a NIC the drive does not list → one clear record at once (not the 60 s retry budget), nothing written', async () => {
    const eni = await readIn(name, ENI);
    const nic = await lab.attach({ name });
    const rec = await waitRecord(name, (r) => r.mac === nic.mac && r.action === 'add', 20_000);
    expect(rec.result, JSON.stringify(rec)).to.equal('ignored');
    expect(rec.reason).to.match(/metadata is static \(config drive .*does not list MAC/);
    expect(rec.probes, 'no blind waiting').to.equal(0);
    expect(await readIn(name, ENI)).to.equal(eni);
    const lines = ((await readIn(name, '/var/log/cloud-hotplug.log')) ?? '').split('\n').filter((l) => l.includes(nic.mac) && l.includes('metadata is static'));
    expect(lines.length, 'log lines about it').to.be.at.least(1).and.at.most(2);
    await lab.detach(nic.ifname, { name });
    await waitRecord(name, (r) => (r.mac === nic.mac || r.iface === nic.ifname) && r.action === 'remove');
  });

  it('configdrive.metadata_fallback: true → the same kind of NIC is configured from the metadata service, with its policy routing', async () => {
    await lab.writeFileInInstance('/etc/cloud-hotplug/config.yaml', 'retry:\n  budget_seconds: 60\nconfigdrive:\n  metadata_fallback: true\n', { name });
    const nic = await lab.attach({ name, ips: 1, static: true });
    const rec = await waitRecord(name, (r) => r.mac === nic.mac && r.action === 'add');
    expect(rec.result, JSON.stringify(rec)).to.equal('configured');
    await waitConfigured(name, nic, TABLE_BASE + nic.deviceNumber);
    await expectReachable(name, nic.ips);
    expect((await status(name)).metadata.static).to.equal(false);
  });
});
