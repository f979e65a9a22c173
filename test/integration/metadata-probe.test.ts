/**
 * The daemon's metadata probe in the lab, with the default configuration (no config file): real
 * cloud-init, the lab's IMDS (IMDSv2 tokens). Secondary IPs added and removed in metadata with no
 * device event, on the primary and a secondary NIC, are applied; then, idle, the IMDS sees only the
 * probe's small reads, no more of them than the probe interval allows (a count, not a time). Each
 * such change costs one crawl of the network subtree (the poller's), not a second under the lock.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lab, hotplug, sh, ipv4Of, waitFor, labFixture, assertLabGone, startSupervisedDaemon, stopSupervisor, crawlsOf } from './helpers.js';
import { defaultConfig } from '../../src/config.js';
import { PROBE_JITTER } from '../../src/daemon/probe.js';

/** Idle window of the request count. */
const IDLE_MS = 30_000;
/** What the probe may read: one small leaf of a NIC, or the MAC list. */
const PROBE_PATH = /^\/[^/]+\/meta-data\/network\/interfaces\/macs\/(([0-9a-f]{2}:){5}[0-9a-f]{2}\/(local-ipv4s|ipv6s|ipv4-prefix|ipv6-prefix))?$/;

async function status(name: string): Promise<Record<string, any>> {
  const r = await hotplug(name, ['status', '--json']);
  expect(r.exitCode, r.stderr).to.equal(0);
  return JSON.parse(r.stdout).daemon as Record<string, any>;
}

describe('metadata probe (lab t-probe: the daemon with the default config, secondary IPs with no device event, idle IMDS requests)', function () {
  this.timeout(300_000);
  const fx = labFixture('t-probe', { install: true });
  const name = fx.name;
  let logDir: string;
  let supervisor: number | undefined;
  let nic: lab.NicInfo;

  before(async function () {
    logDir = mkdtempSync(join(tmpdir(), 't-probe-'));
    await fx.boot();
    nic = await lab.attach({ name });
    await waitFor('secondary NIC configured', async () => (await ipv4Of(name, nic.ifname)).includes(nic.ips[0]!), 60_000, 100);
    supervisor = await startSupervisedDaemon(name, join(logDir, 'daemon.log'));
    await waitFor('daemon ready', async () => {
      const d = await status(name);
      return d.running && d.ready && d.bridge?.alive ? d : null;
    }, 60_000, 200);
  });

  after(async function () {
    await stopSupervisor(supervisor);
    if (process.env.T_PROBE_KEEP_LOG) process.stderr.write(`      daemon log: ${join(logDir, 'daemon.log')}\n`);
    else {
      if (this.currentTest?.state === 'failed' && existsSync(join(logDir, 'daemon.log'))) process.stderr.write(readFileSync(join(logDir, 'daemon.log'), 'utf8').split('\n').slice(-30).join('\n'));
      rmSync(logDir, { recursive: true, force: true });
    }
    await fx.teardown();
    expect(await assertLabGone(name)).to.deep.equal([]);
  });

  it('secondary IPs added and removed in metadata, on the primary and a secondary NIC, are applied by the probe-driven poller (default config)', async () => {
    const d0 = await status(name);
    expect(d0.config.probe_interval_seconds).to.equal(defaultConfig.daemon.probe_interval_seconds);
    expect(d0.poller.probe.enabled).to.equal(true);
    const added: { ifname: string; ip: string }[] = [];
    for (const ifname of ['eth0', nic.ifname]) {
      const [ip] = await lab.addIp(ifname, 1, { name });
      await waitFor(`${ip} on ${ifname}`, async () => (await ipv4Of(name, ifname)).includes(ip!), 60_000, 100);
      added.push({ ifname, ip: ip! });
    }
    // The secondary NIC's new address is policy-routed like its first one.
    const rules = await sh(name, ['ip', 'rule', 'show']);
    expect(rules).to.match(new RegExp(`from ${added[1]!.ip.replace(/\./g, '\\.')} lookup \\d+`));
    for (const { ifname, ip } of added) {
      await lab.removeIp(ifname, ip, { name });
      await waitFor(`${ip} gone from ${ifname}`, async () => !(await ipv4Of(name, ifname)).includes(ip), 60_000, 100);
    }
    expect(await sh(name, ['ip', 'rule', 'show'])).to.not.include(`from ${added[1]!.ip} `);
    const d = await status(name);
    expect(d.poller.probe.supported).to.equal(true);
    expect(d.poller.probe.changes, 'changes the probe saw').to.be.at.least(4);
    expect(d.last_events.filter((e: any) => e.type === 'metadata_change' && e.result === 'applied').length).to.be.at.least(4);
  });

  it('one crawl per metadata change: a secondary IP added, then removed, with no device event, is each read once (the probe\'s change, not again under the lock)', async () => {
    const applied = async () => (await status(name)).last_events.filter((e: any) => e.type === 'metadata_change' && e.result === 'applied').length;
    for (const step of ['add', 'remove'] as const) {
      const n0 = await applied();
      const c0 = crawlsOf(await lab.imdsStats({ name }));
      let ip: string;
      if (step === 'add') [ip] = (await lab.addIp(nic.ifname, 1, { name })) as [string];
      else {
        ip = (await ipv4Of(name, nic.ifname)).find((a) => a !== nic.ips[0])!;
        await lab.removeIp(nic.ifname, ip, { name });
      }
      await waitFor(`metadata change (${step} ${ip}) applied`, async () => (await applied()) > n0, 60_000, 100);
      expect((await ipv4Of(name, nic.ifname)).includes(ip), `${ip} on ${nic.ifname} after ${step}`).to.equal(step === 'add');
      expect(crawlsOf(await lab.imdsStats({ name })) - c0, `crawls of meta-data/network/ for the ${step}`).to.equal(1);
    }
  });

  it('idle: the IMDS sees only the probe\'s one-leaf GETs (no crawl), at most one per probe interval (and a token PUT)', async () => {
    await waitFor('daemon idle', async () => {
      const d = await status(name);
      return d.current_job === null && d.jobs_waiting === 0;
    }, 30_000, 200);
    await new Promise((r) => setTimeout(r, 2000));
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const reqs = (await lab.imdsRequests(t0, { name })).filter((r) => r.t < t0 + IDLE_MS);
    const gets = reqs.filter((r) => r.method === 'GET');
    const puts = reqs.filter((r) => r.method === 'PUT');
    const interval = defaultConfig.daemon.probe_interval_seconds * 1000 * (1 - PROBE_JITTER);
    const most = Math.floor(IDLE_MS / interval) + 1;
    console.log(`      idle ${IDLE_MS / 1000} s: ${gets.length} GET(s), ${puts.length} PUT(s) (at most ${most} GETs)`);
    expect(gets.map((r) => r.path).filter((p) => !PROBE_PATH.test(p)), 'requests other than the probe\'s').to.deep.equal([]);
    expect(gets.length, 'probe GETs').to.be.within(1, most);
    expect(puts.length, 'token PUTs').to.be.at.most(1);
    const d = await status(name);
    expect(d.poller.probe.requests_last_minute).to.be.at.most(30);
  });
});
