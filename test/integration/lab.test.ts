/**
 * The lab itself, for real: namespaces, dnsmasq, the fake IMDS, udevd and the real cloud-init.
 * Needs root. Uses labs named t-lab / t-lab-gen so it can run beside a developer's lab.
 */
import { expect } from 'chai';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import * as lab from '../../scripts/lab/index.js';
import { isAlive, type ProcRef } from '../../scripts/lab/proc.js';
import { loadState, type LabState } from '../../scripts/lab/state.js';

const NAME = 't-lab';
const GEN = 't-lab-gen';

/** GET (or PUT) the IMDS from inside the instance with node's fetch; token=true does IMDSv2. */
const FETCH_JS = `
const [path, useToken] = process.argv.slice(1);
const base = 'http://169.254.169.254';
const h = {};
try {
  if (useToken === '1') {
    const t = await fetch(base + '/latest/api/token', { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } });
    h['X-aws-ec2-metadata-token'] = await t.text();
  }
  const r = await fetch(base + path, { headers: h, signal: AbortSignal.timeout(3000) });
  console.log(JSON.stringify({ status: r.status, body: await r.text() }));
} catch (e) {
  console.log(JSON.stringify({ status: 0, error: String(e.cause?.code ?? e.name ?? e) }));
}
`;

async function imdsGet(name: string, path: string, token: boolean): Promise<{ status: number; body?: string; error?: string }> {
  const r = await lab.exec([process.execPath, '--input-type=module', '-e', FETCH_JS, path, token ? '1' : '0'], { name, cleanEnv: true, env: { PATH: '/usr/bin:/bin' } });
  expect(r.exitCode, r.stderr).to.equal(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

async function macsListed(name: string): Promise<string[]> {
  const r = await imdsGet(name, '/latest/meta-data/network/interfaces/macs/', true);
  expect(r.status).to.equal(200);
  return r.body!.split('\n').map((l) => l.replace(/\/$/, ''));
}

async function instanceIfaces(name: string) {
  const st = await lab.status({ name });
  return st.interfaces;
}

function refsOf(s: LabState): ProcRef[] {
  return [s.holder, s.procs.dnsmasq, s.procs.imds, s.procs.udevd, s.procs.udevMonitor].filter((r): r is NonNullable<typeof r> => !!r);
}

/** Nothing of the lab remains: netns, dir, processes, mounts (in any mount namespace). */
async function assertGone(name: string, refs: ProcRef[]): Promise<void> {
  const p = lab.labPaths(name);
  expect(await lab.leftovers(name)).to.deep.equal([]);
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  expect(netns.filter((n) => n.startsWith(`chl-${name}-`))).to.deep.equal([]);
  for (const r of refs) expect(isAlive(r), `${r.what} pid ${r.pid} still alive`).to.equal(false);
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let mi = '';
    try {
      mi = readFileSync(`/proc/${e}/mountinfo`, 'utf8');
    } catch {
      continue;
    }
    expect(mi.includes(p.dir + '/'), `pid ${e} still has a mount referencing ${p.dir}`).to.equal(false);
  }
}

describe('lab (faithful EC2)', function () {
  this.timeout(300_000);
  let upMs = 0;
  let state: LabState;

  before(async function () {
    if (process.getuid?.() !== 0) this.skip();
    await lab.down({ name: NAME, quiet: true });
    const t0 = Date.now();
    const r = await lab.up({ name: NAME, quiet: true });
    upMs = Date.now() - t0;
    console.log(`      lab up took ${(upMs / 1000).toFixed(1)}s: ${r.stages.map((s) => `${s.name} ${s.ms}ms`).join(', ')}`);
    state = (await loadState(lab.labPaths(NAME).state))!;
  });

  after(async function () {
    if (process.getuid?.() !== 0) return;
    const s = (await loadState(lab.labPaths(NAME).state)) ?? state;
    const refs = s ? refsOf(s) : [];
    const r = await lab.down({ name: NAME, quiet: true });
    expect(r.remaining).to.deep.equal([]);
    await assertGone(NAME, refs);
    // down is safe to repeat
    const again = await lab.down({ name: NAME, quiet: true });
    expect(again.existed).to.equal(false);
  });

  it('boots cloud-init to done, writing result.json', async () => {
    const st = await lab.status({ name: NAME });
    expect(st.phase).to.equal('up');
    expect(st.cloudInit?.status).to.equal('done');
    const result = JSON.parse(await lab.readFileInInstance('/run/cloud-init/result.json', { name: NAME }));
    expect(result.v1.datasource).to.equal('DataSourceEc2Local');
    expect(result.v1.errors).to.deep.equal([]);
    expect(upMs).to.be.below(30_000);
  });

  it('caches DataSourceEc2Local on platform aws', async () => {
    const ds = await lab.readFileInInstance('/var/lib/cloud/instance/datasource', { name: NAME });
    expect(ds).to.match(/^DataSourceEc2Local:/);
    const idata = JSON.parse(await lab.readFileInInstance('/run/cloud-init/instance-data.json', { name: NAME }));
    expect(idata.v1.cloud_name).to.equal('aws');
    expect(idata.v1.platform).to.equal('ec2');
  });

  it('gives eth0 its DHCP address and renders it with the ENI renderer', async () => {
    const eth0 = (await instanceIfaces(NAME)).find((i) => i.ifname === 'eth0');
    const primary = state.attachments.find((a) => a.deviceNumber === 0)!;
    expect(eth0?.mac).to.equal(primary.mac);
    expect(eth0?.addrs).to.include(`${primary.ips[0]}/24`);
    const eni = await lab.readFileInInstance('/etc/network/interfaces.d/50-cloud-init', { name: NAME });
    expect(eni).to.match(/iface eth0 inet dhcp/);
    const resolv = await lab.readFileInInstance('/etc/resolv.conf', { name: NAME });
    expect(resolv).to.match(/nameserver 10\.0\.1\.1/);
  });

  it('keeps the host untouched: instance /etc and /var are overlays, ifupdown udev rule masked', async () => {
    expect(existsSync('/var/lib/cloud/instance/datasource') && readFileSync('/var/lib/cloud/instance/datasource', 'utf8').includes('Ec2')).to.equal(false);
    const r = await lab.exec(['stat', '-f', '-c', '%T', '/etc', '/var', '/run'], { name: NAME });
    expect(r.stdout.trim().split('\n')).to.deep.equal(['overlayfs', 'overlayfs', 'tmpfs']);
    const masked = await lab.readFileInInstance('/etc/udev/rules.d/80-ifupdown.rules', { name: NAME });
    expect(masked).to.not.match(/RUN/);
  });

  it('enforces IMDSv2: 401 without a token, 200 with one; stats count it', async () => {
    const before = await lab.imdsStats({ name: NAME });
    expect(before.total).to.be.greaterThan(10);
    expect(before.tokenPuts).to.be.greaterThan(0);
    expect(before.byPrefix['meta-data/network']).to.be.greaterThan(0);
    const no = await imdsGet(NAME, '/latest/meta-data/instance-id', false);
    expect(no.status).to.equal(401);
    const yes = await imdsGet(NAME, '/latest/meta-data/instance-id', true);
    expect(yes.status).to.equal(200);
    expect(yes.body).to.match(/^i-[0-9a-f]{17}$/);
    const after = await lab.imdsStats({ name: NAME, reset: true });
    expect(after.unauthorized).to.equal(before.unauthorized + 1);
    expect(after.tokenPuts).to.equal(before.tokenPuts + 1);
    expect(after.total).to.equal(before.total + 3);
    expect((await lab.imdsStats({ name: NAME })).total).to.equal(0);
  });

  it('attach: a NIC with the right MAC appears, udevd processes its add, metadata lists it', async () => {
    const t0 = lab.monotonicNow();
    const nic = await lab.attach({ name: NAME, ips: 2 });
    expect(nic.ifname).to.equal(`eth${nic.deviceNumber}`);
    expect(nic.deviceNumber).to.be.greaterThan(0);
    expect(nic.subnet).to.equal(2);
    expect(nic.cidr).to.equal('10.0.2.0/24');
    expect(nic.gateway).to.equal('10.0.2.1');
    expect(nic.ips).to.have.length(3);
    const i = (await instanceIfaces(NAME)).find((x) => x.ifname === nic.ifname);
    expect(i?.mac).to.equal(nic.mac);
    const kev = await lab.waitForUdevEvent(nic.ifname, 'add', { name: NAME, since: t0, source: 'kernel' });
    const ev = await lab.waitForUdevEvent(nic.ifname, 'add', { name: NAME, since: t0 });
    expect(kev, 'kernel add uevent').to.not.equal(null);
    expect(ev, 'udevd add event').to.not.equal(null);
    expect(ev!.props.ID_NET_DRIVER).to.equal('veth');
    expect(ev!.monotonic).to.be.at.least(kev!.monotonic);
    expect(await macsListed(NAME)).to.include(nic.mac);
    const ips = await imdsGet(NAME, `/latest/meta-data/network/interfaces/macs/${nic.mac}/local-ipv4s`, true);
    expect(ips.body!.split('\n')).to.deep.equal(nic.ips);
    const dn = await imdsGet(NAME, `/latest/meta-data/network/interfaces/macs/${nic.mac}/device-number`, true);
    expect(dn.body).to.equal(String(nic.deviceNumber));
    const cidr = await imdsGet(NAME, `/latest/meta-data/network/interfaces/macs/${nic.mac}/subnet-ipv4-cidr-block`, true);
    expect(cidr.body).to.equal('10.0.2.0/24');
    // the static lease works
    const dh = await lab.exec(['dhclient', '-1', '-pf', `/run/t-${nic.ifname}.pid`, '-lf', `/run/t-${nic.ifname}.lease`, nic.ifname], { name: NAME, timeoutMs: 30_000 });
    expect(dh.exitCode, dh.stderr).to.equal(0);
    const after = (await instanceIfaces(NAME)).find((x) => x.ifname === nic.ifname);
    expect(after?.addrs).to.include(`${nic.ips[0]}/24`);

    // detach: the interface goes (a udev remove) and so does its metadata
    const t1 = lab.monotonicNow();
    await lab.detach(nic.ifname, { name: NAME });
    expect((await instanceIfaces(NAME)).some((x) => x.ifname === nic.ifname)).to.equal(false);
    expect(await lab.waitForUdevEvent(nic.ifname, 'remove', { name: NAME, since: t1 })).to.not.equal(null);
    expect(await macsListed(NAME)).to.not.include(nic.mac);
  });

  it('attach --lag hides the NIC from metadata for that long', async () => {
    const nic = await lab.attach({ name: NAME, lagSeconds: 2 });
    expect(nic.visibleAt).to.be.a('number');
    expect((await instanceIfaces(NAME)).some((x) => x.mac === nic.mac)).to.equal(true);
    expect(await macsListed(NAME)).to.not.include(nic.mac);
    const gone = await imdsGet(NAME, `/latest/meta-data/network/interfaces/macs/${nic.mac}/device-number`, true);
    expect(gone.status).to.equal(404);
    await new Promise((r) => setTimeout(r, Math.max(0, nic.visibleAt! - Date.now()) + 200));
    expect(await macsListed(NAME)).to.include(nic.mac);
    // detach --keep-metadata: gone from the instance, still in metadata
    await lab.detach(nic.ifname, { name: NAME, keepMetadata: true });
    expect(await macsListed(NAME)).to.include(nic.mac);
    const st = await lab.status({ name: NAME });
    expect(st.metadataOnlyNics.map((n) => n.mac)).to.include(nic.mac);
    await lab.removeNicMetadata(nic.mac, { name: NAME });
    expect(await macsListed(NAME)).to.not.include(nic.mac);
  });

  it('attachMany(16): sixteen NICs at once, each processed by udevd; all detach', async () => {
    const t0 = lab.monotonicNow();
    const nics = await lab.attachMany(16, { name: NAME });
    expect(new Set(nics.map((n) => n.ifname)).size).to.equal(16);
    expect(new Set(nics.map((n) => n.ips[0])).size).to.equal(16);
    const ifs = await instanceIfaces(NAME);
    for (const n of nics) expect(ifs.find((i) => i.ifname === n.ifname)?.mac, n.ifname).to.equal(n.mac);
    for (const n of nics) expect(await lab.waitForUdevEvent(n.ifname, 'add', { name: NAME, since: t0 }), n.ifname).to.not.equal(null);
    const listed = await macsListed(NAME);
    for (const n of nics) expect(listed).to.include(n.mac);
    await Promise.all(nics.map((n) => lab.detach(n.ifname, { name: NAME })));
    expect((await instanceIfaces(NAME)).map((i) => i.ifname).sort()).to.deep.equal(['eth0', 'lo']);
  });

  it('metadata ops: add-ip / remove-ip / user-data', async () => {
    const added = await lab.addIp('eth0', 2, { name: NAME });
    expect(added).to.have.length(2);
    const mac = state.attachments.find((a) => a.deviceNumber === 0)!.mac;
    let ips = await imdsGet(NAME, `/latest/meta-data/network/interfaces/macs/${mac}/local-ipv4s`, true);
    expect(ips.body!.split('\n').slice(1)).to.deep.equal(added);
    await lab.removeIp('eth0', added[0]!, { name: NAME });
    ips = await imdsGet(NAME, `/latest/meta-data/network/interfaces/macs/${mac}/local-ipv4s`, true);
    expect(ips.body!.split('\n')).to.not.include(added[0]);
    await lab.removeIp('eth0', added[1]!, { name: NAME });
    const ud = await imdsGet(NAME, '/latest/user-data', true);
    expect(ud.body).to.match(/when: \[boot, hotplug\]/);
  });

  it('IMDS stop/start (connection refused) and faults', async () => {
    await lab.imdsStop({ name: NAME });
    const refused = await imdsGet(NAME, '/latest/meta-data/instance-id', false);
    expect(refused.status).to.equal(0);
    expect(refused.error).to.equal('ECONNREFUSED');
    await lab.imdsStart({ name: NAME });
    await lab.setFault({ mode: 'http500', count: 1, pathPrefix: 'meta-data/instance-id' }, { name: NAME });
    expect((await imdsGet(NAME, '/latest/meta-data/instance-id', true)).status).to.equal(500);
    expect((await imdsGet(NAME, '/latest/meta-data/instance-id', true)).status).to.equal(200);
    await lab.setFault({ mode: 'refuse-token' }, { name: NAME });
    expect((await imdsGet(NAME, '/latest/meta-data/instance-id', true)).status).to.equal(401);
    await lab.clearFault({ name: NAME });
    expect((await lab.imdsStats({ name: NAME })).fault).to.equal(null);
  });

  it('exec passes the exit code through and sees the instance hostname', async () => {
    const r = await lab.exec(['sh', '-c', 'hostname; exit 7'], { name: NAME });
    expect(r.exitCode).to.equal(7);
    expect(r.stdout.trim()).to.match(/^ip-10-0-1-\d+/);
  });

  it('up on a running lab re-uses it', async () => {
    const r = await lab.up({ name: NAME, quiet: true });
    expect(r.alreadyUp).to.equal(true);
    expect(r.holderPid).to.equal(state.holder!.pid);
  });
});

describe('lab (generic mode, paused boot)', function () {
  this.timeout(300_000);
  let state: LabState | null = null;

  before(async function () {
    if (process.getuid?.() !== 0) this.skip();
    await lab.down({ name: GEN, quiet: true });
    const r = await lab.up({ name: GEN, mode: 'generic', pauseBefore: 'final', quiet: true });
    expect(r.phase).to.equal('paused-before-final');
    state = await loadState(lab.labPaths(GEN).state);
  });

  after(async function () {
    if (process.getuid?.() !== 0) return;
    const s = (await loadState(lab.labPaths(GEN).state)) ?? state;
    await lab.down({ name: GEN, quiet: true });
    await assertGone(GEN, s ? refsOf(s) : []);
  });

  it('has no result.json until resume; then DataSourceEc2 over IMDSv1', async () => {
    const root = await lab.instanceRootPath({ name: GEN });
    expect(existsSync(`${root}/run/cloud-init/result.json`)).to.equal(false);
    const r = await lab.resume({ name: GEN, quiet: true });
    expect(r.phase).to.equal('up');
    expect(r.cloudInit?.status).to.equal('done');
    const result = JSON.parse(await lab.readFileInInstance('/run/cloud-init/result.json', { name: GEN }));
    expect(result.v1.datasource).to.equal('DataSourceEc2');
    const ds = await lab.readFileInInstance('/var/lib/cloud/instance/datasource', { name: GEN });
    expect(ds).to.match(/^DataSourceEc2:/);
    const stats = await lab.imdsStats({ name: GEN });
    expect(stats.tokenPuts).to.equal(0);
    expect(stats.unauthorized).to.equal(0);
    expect((await imdsGet(GEN, '/latest/meta-data/instance-id', false)).status).to.equal(200);
  });
});

describe('lab down after a crash half-way through up', function () {
  this.timeout(120_000);
  const CRASH = 't-lab-crash';

  before(function () {
    if (process.getuid?.() !== 0) this.skip();
  });

  for (const delayMs of [0, 300, 1200]) {
    it(`cleans up an up killed ${delayMs} ms after it started creating`, async () => {
      await lab.down({ name: CRASH, quiet: true });
      const { spawn } = await import('node:child_process');
      const cli = new URL('../../scripts/lab/cli.js', import.meta.url).pathname;
      const child = spawn(process.execPath, [cli, 'up', '--name', CRASH], { stdio: 'ignore' });
      const statePath = lab.labPaths(CRASH).state;
      for (let i = 0; i < 400 && !existsSync(statePath); i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, delayMs));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const s = await loadState(lab.labPaths(CRASH).state);
      const r = await lab.down({ name: CRASH, quiet: true });
      expect(r.existed).to.equal(true);
      await assertGone(CRASH, s ? refsOf(s) : []);
    });
  }
});
