/**
 * `hotplug daemon` in the lab: started inside the instance (no systemd there) as
 * `hotplug daemon --supervise` in the background, with the udev hook installed. Measures the
 * one-shot path and the daemon path on the same lab in the same run, then shows metadata polling
 * with the probe off (metadata-probe.test.ts has the probe), the socket's guarantees, crash
 * recovery (Python child and daemon), SIGHUP, link events, the kernel watch without udev, and
 * `status --json`.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lab, hotplug, sh, ipv4Of, readIn, assertLabGone, waitFor, labFixture, waitRecord as waitRecordEvery, instancePids, type EventRec, startSupervisedDaemon, stopSupervisor } from './helpers.js';
import { DAEMON_NICE } from '../../src/daemon/supervise.js';

const PATH_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
const POLL_S = 3;
const SOCK = '/run/cloud-hotplug/daemon.sock';

const waitRecord = (name: string, pred: (r: EventRec) => boolean, timeoutMs = 60_000) => waitRecordEvery(name, pred, timeoutMs, 50);

async function daemonStatus(name: string): Promise<Record<string, any>> {
  const r = await hotplug(name, ['status', '--json']);
  expect(r.exitCode, r.stderr).to.equal(0);
  return JSON.parse(r.stdout).daemon as Record<string, any>;
}

/** Node inside the instance, as root (or as `user` via setpriv), running `js` with `args`. */
async function nodeIn(name: string, js: string, args: string[] = [], user?: number) {
  const pre = user === undefined ? [] : ['/usr/bin/setpriv', `--reuid=${user}`, `--regid=${user}`, '--clear-groups'];
  return lab.exec([...pre, process.execPath, '-e', js, ...args], { name, cleanEnv: true, env: PATH_ENV, timeoutMs: 60_000 });
}

const CLIENT_JS = `
const net = require('net');
const [sock, mode, n] = process.argv.slice(1);
function ask(lines) {
  return new Promise((resolve) => {
    const c = net.createConnection(sock); let buf = ''; const out = [];
    c.on('connect', () => c.write(lines.map((l) => l + '\\n').join('')));
    c.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { out.push(JSON.parse(buf.slice(0, i))); buf = buf.slice(i + 1); } if (out.length >= lines.length) { c.destroy(); resolve(out); } });
    c.on('error', (e) => resolve([{ ok: false, error: e.code }]));
  });
}
(async () => {
  if (mode === 'malformed') {
    const r = await ask(['this is not json', '{"op":"explode"}', '[]', '{"op":"apply","dryRun":"maybe"}', '{"op":"status"}']);
    console.log(JSON.stringify(r.map((x) => ({ ok: x.ok, error: x.error, running: x.status && x.status.running }))));
  } else if (mode === 'concurrent') {
    const t0 = Date.now();
    const all = await Promise.all(Array.from({ length: Number(n) }, () => ask(['{"op":"status"}'])));
    console.log(JSON.stringify({ ok: all.filter((r) => r[0].ok && r[0].status.running).length, ms: Date.now() - t0 }));
  } else if (mode === 'connect') {
    const c = net.createConnection(sock);
    c.on('connect', () => { console.log('connected'); process.exit(0); });
    c.on('error', (e) => { console.log(e.code); process.exit(0); });
  }
})();`;

const SUBSCRIBE_JS = `
const c = require('net').createConnection(process.argv[1]); let buf = '';
const t = setTimeout(() => process.exit(0), Number(process.argv[2]));
c.on('connect', () => c.write('{"op":"subscribe"}\\n'));
c.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); console.log(l);
  const m = JSON.parse(l); if (m.type === 'event') { clearTimeout(t); process.exit(0); } } });`;

describe('hotplug daemon (lab t-dmn: warm service, socket, kernel watch, metadata polling)', function () {
  const fx = labFixture('t-dmn', { mode: 'faithful', install: true, config: `retry:\n  budget_seconds: 20\ndaemon:\n  poll_interval_seconds: ${POLL_S}\n  probe_interval_seconds: 0\n` });
  const name = fx.name;
  let logDir: string;
  let logFile: string;
  let supervisor: number | undefined;
  let oneShotMs = 0;
  let daemonMs = 0;
  let nic: lab.NicInfo;
  const daemonLog = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  const startSupervised = () => startSupervisedDaemon(name, logFile);

  const readyDaemon = (notPid?: number) =>
    waitFor('daemon ready', async () => {
      const d = await daemonStatus(name);
      return d.running && d.ready && d.bridge?.alive && d.pid !== notPid ? d : null;
    }, 30_000, 200);

  before(async function () {
    logDir = mkdtempSync(join(tmpdir(), 't-dmn-'));
    logFile = join(logDir, 'daemon.log');
    await fx.boot();
  });

  after(async function () {
    await stopSupervisor(supervisor);
    if (process.env.T_DMN_KEEP_LOG) process.stderr.write(`      daemon log: ${logFile}\n`);
    else rmSync(logDir, { recursive: true, force: true });
    await fx.teardown();
    expect(await assertLabGone(name)).to.deep.equal([]);
  });

  /** The nice value of a process (field 19 of /proc/PID/stat). */
  const niceOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[16]);

  it('one-shot path first (no daemon): attach → configured by a hook-started worker; its handling time is recorded', async () => {
    const n = await lab.attach({ name });
    await waitFor('address', async () => (await ipv4Of(name, n.ifname)).includes(n.ips[0]!), 30_000, 20);
    const rec = await waitRecord(name, (r) => r.mac === n.mac && r.action === 'add');
    expect(rec.result).to.equal('configured');
    oneShotMs = rec.duration_ms;
    const hook = ((await readIn(name, '/var/log/cloud-hotplug.log')) ?? '').split('\n').filter((l) => l.includes('hook queued') && l.includes(`iface=${n.ifname} `));
    expect(hook.join('\n')).to.match(/worker=(started|"pid \d+")/);
    // The worker ran at DAEMON_NICE (udev's programs first in a storm): its Python's children
    // inherit it, and the NIC's DHCP client, started by ifup, outlives them to show it.
    const dhcp = await instancePids(name, (a) => /dhclient$/.test(a[0]!) && a.includes(n.ifname));
    expect(dhcp, `the DHCP client of ${n.ifname}`).to.have.length(1);
    expect(niceOf(dhcp[0]!)).to.equal(DAEMON_NICE);
  });

  it('the daemon starts supervised, says ready, and reports its idle RSS (node + python)', async () => {
    supervisor = await startSupervised();
    const d = await readyDaemon();
    expect(daemonLog()).to.match(/hotplug daemon ready: pid \d+, socket \/run\/cloud-hotplug\/daemon\.sock/);
    // Idle: a few poll intervals with nothing to do.
    await new Promise((r) => setTimeout(r, 12_000));
    const idle = (await daemonStatus(name)).memory;
    console.log(`      idle RSS: node ${idle.node_rss_mb} MB + python ${idle.python_rss_mb} MB = ${idle.total_rss_mb} MB (target 80 MB)`);
    expect(idle.python_rss_mb).to.be.a('number');
    expect(idle.total_rss_mb, 'idle RSS node+python (MB)').to.be.lessThan(100);
    expect(d.bridge.restarts).to.equal(0);
    // The daemon and its Python bridge run at DAEMON_NICE, inherited from the supervisor.
    const daemons = await instancePids(name, (a) => a.includes('daemon') && !a.includes('--supervise') && a[0] === process.execPath);
    const pythons = await instancePids(name, (a) => /python3/.test(a[0]!));
    expect(daemons, 'the daemon process').to.have.length(1);
    expect(pythons.length, 'its Python bridge').to.be.greaterThan(0);
    expect([...daemons, ...pythons].map(niceOf)).to.deep.equal([...daemons, ...pythons].map(() => DAEMON_NICE));
  });

  it('attach one NIC with the daemon → configured through the warm bridge, clearly faster than the one-shot path; subscribers see the event', async () => {
    const subArgv = await lab.instanceCommand([process.execPath, '-e', SUBSCRIBE_JS, SOCK, '30000'], { name, cwd: '/' });
    const sub = execa(subArgv[0]!, subArgv.slice(1), { reject: false, env: PATH_ENV, extendEnv: false });
    await new Promise((r) => setTimeout(r, 500));
    nic = await lab.attach({ name, ips: 0 });
    await waitFor('address', async () => (await ipv4Of(name, nic.ifname)).includes(nic.ips[0]!), 30_000, 20);
    const rec = await waitRecord(name, (r) => r.mac === nic.mac && r.action === 'add');
    expect(rec.result).to.equal('configured');
    daemonMs = rec.duration_ms;
    console.log(`      udev event → configured: one-shot ${oneShotMs} ms, daemon ${daemonMs} ms`);
    expect(daemonMs, `daemon ${daemonMs} ms vs one-shot ${oneShotMs} ms`).to.be.lessThan(oneShotMs * 0.75);
    const hook = ((await readIn(name, '/var/log/cloud-hotplug.log')) ?? '').split('\n').filter((l) => l.includes('hook queued') && l.includes(`iface=${nic.ifname} `));
    expect(hook.join('\n')).to.match(/worker="?daemon"?/);
    const lines = (await sub).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(lines[0]).to.deep.equal({ ok: true, op: 'subscribe' });
    expect(lines.find((m) => m.type === 'event' && m.mac === nic.mac)).to.include({ action: 'add', result: 'configured', iface: nic.ifname });
  });

  it('probe off (probe_interval_seconds: 0, the path of datasources without a probe): a secondary IP added in metadata (no device event) is configured within one full re-read interval + apply time and reachable with policy routing; removal likewise', async () => {
    const bound = POLL_S * 1200 + 5000;
    const t0 = Date.now();
    const [ip] = await lab.addIp(nic.ifname, 1, { name });
    await waitFor(`${ip} on ${nic.ifname}`, async () => (await ipv4Of(name, nic.ifname)).includes(ip!), bound, 50);
    const addMs = Date.now() - t0;
    const rules = await sh(name, ['ip', 'rule', 'show']);
    expect(rules).to.match(new RegExp(`from ${ip!.replace(/\./g, '\\.')} lookup \\d+`));
    // From outside the subnets: the reply must leave by the NIC the address belongs to (the lab's
    // source check drops anything else), so an answer proves the policy routing.
    const ping = await lab.clientPing(ip!, { name, count: 3, waitMs: 1000 });
    expect(ping.received, 'ping replies').to.be.greaterThan(0);
    const t1 = Date.now();
    await lab.removeIp(nic.ifname, ip!, { name });
    await waitFor(`${ip} gone`, async () => !(await ipv4Of(name, nic.ifname)).includes(ip!), bound, 50);
    const removeMs = Date.now() - t1;
    expect(await sh(name, ['ip', 'rule', 'show'])).to.not.include(`from ${ip} `);
    console.log(`      metadata change → configured in ${addMs} ms, removed in ${removeMs} ms (poll ${POLL_S} s ±20%)`);
    const d = await daemonStatus(name);
    expect(d.last_events.filter((e: any) => e.type === 'metadata_change' && e.result === 'applied').length).to.be.at.least(2);
  });

  it('socket: mode 0600, a non-root user cannot connect; malformed requests get errors and the daemon keeps serving; 100 concurrent status requests all answered', async () => {
    expect((await sh(name, ['stat', '-c', '%a %U', SOCK])).trim()).to.equal('600 root');
    const nobody = await nodeIn(name, CLIENT_JS, [SOCK, 'connect'], 65534);
    expect(nobody.stdout.trim(), nobody.stderr).to.equal('EACCES');
    const bad = JSON.parse((await nodeIn(name, CLIENT_JS, [SOCK, 'malformed'])).stdout);
    expect(bad.map((x: any) => x.ok)).to.deep.equal([false, false, false, false, true]);
    expect(bad[0].error).to.match(/not JSON/);
    expect(bad[1].error).to.match(/unknown op/);
    expect(bad[3].error).to.match(/dryRun must be true or false/);
    expect(bad[4].running).to.equal(true);
    const many = JSON.parse((await nodeIn(name, CLIENT_JS, [SOCK, 'concurrent', '100'])).stdout);
    expect(many.ok).to.equal(100);
    console.log(`      100 concurrent status requests answered in ${many.ms} ms`);
    expect((await daemonStatus(name)).state).to.be.oneOf(['idle', 'busy']);
  });

  it('kill -9 of the Python child mid-apply → the daemon restarts it, re-runs the batch, and the event completes', async () => {
    const before = await daemonStatus(name);
    const slow = await lab.attach({ name, lagSeconds: 3 });
    await waitFor('daemon busy with the event', async () => (await daemonStatus(name)).current_job?.startsWith('drain'), 10_000, 50);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(before.bridge.pid, 'SIGKILL');
    await waitFor('configured after the restart', async () => (await ipv4Of(name, slow.ifname)).includes(slow.ips[0]!), 40_000, 50);
    const rec = await waitRecord(name, (r) => r.mac === slow.mac && r.action === 'add');
    expect(rec.result).to.equal('configured');
    const after = await daemonStatus(name);
    expect(after.pid, 'same daemon').to.equal(before.pid);
    expect(after.bridge.alive).to.equal(true);
    expect(after.bridge.pid).to.not.equal(before.bridge.pid);
    expect(after.bridge.restarts).to.be.at.least(1);
    expect(daemonLog()).to.match(/python bridge (failed mid-batch|died)/);
  });

  it('kill -9 of the daemon mid-batch → the supervisor restarts it and the queued event is handled', async () => {
    const before = await daemonStatus(name);
    const slow = await lab.attach({ name, lagSeconds: 3 });
    await waitFor('daemon busy with the event', async () => (await daemonStatus(name)).current_job?.startsWith('drain'), 10_000, 50);
    process.kill(before.pid, 'SIGKILL');
    expect(await sh(name, ['ls', '/run/cloud-hotplug/queue']), 'queued event').to.match(/\.json/);
    const d = await readyDaemon(before.pid);
    expect(d.pid).to.not.equal(before.pid);
    await waitFor('configured by the new daemon', async () => (await ipv4Of(name, slow.ifname)).includes(slow.ips[0]!), 40_000, 50);
    expect((await waitRecord(name, (r) => r.mac === slow.mac && r.action === 'add')).result).to.equal('configured');
    expect(daemonLog()).to.match(new RegExp(`supervisor: daemon died; restarting it pid=${before.pid} why=SIGKILL`));
    // The killed daemon's Python child does not linger.
    await waitFor('old python gone', async () => !existsSync(`/proc/${before.bridge.pid}`), 10_000, 100);
  });

  it('SIGHUP with an invalid config → error logged, old config kept; with a valid one → applied', async () => {
    const d = await daemonStatus(name);
    await lab.writeFileInInstance('/etc/cloud-hotplug/config.yaml', 'daemon:\n  poll_interval_seconds: -1\n', { name });
    process.kill(d.pid, 'SIGHUP');
    await waitFor('error logged', async () => /config reload failed; keeping the old config error="config\.yaml: daemon\.poll_interval_seconds/.test(daemonLog()), 10_000);
    let st = await daemonStatus(name);
    expect(st.config.poll_interval_seconds).to.equal(POLL_S);
    expect(st.config.last_reload.ok).to.equal(false);
    await lab.writeFileInInstance('/etc/cloud-hotplug/config.yaml', `retry:\n  budget_seconds: 20\ndaemon:\n  poll_interval_seconds: ${POLL_S + 1}\n  probe_interval_seconds: 0\nevents:\n  link_down: reconcile\n`, { name });
    process.kill(d.pid, 'SIGHUP');
    await waitFor('reloaded', async () => (await daemonStatus(name)).config.poll_interval_seconds === POLL_S + 1, 10_000);
    st = await daemonStatus(name);
    expect(st.config.last_reload.ok).to.equal(true);
    expect(st.pid).to.equal(d.pid);
  });

  it('link down/up → the link_down policy (reconcile) restores the NIC\'s policy routes', async () => {
    const table = async () => (await sh(name, ['ip', 'route', 'show', 'table', 'all', 'dev', nic.ifname, 'proto', '199'])).trim();
    const routes = await table();
    expect(routes).to.match(/default via/);
    await sh(name, ['ip', 'link', 'set', nic.ifname, 'down']);
    await waitFor('routes gone with the link', async () => (await table()) === '', 5000);
    await sh(name, ['ip', 'link', 'set', nic.ifname, 'up']);
    await waitFor('routes back', async () => /default via/.test(await table()), 15_000, 100);
    await waitFor('link event logged', async () => new RegExp(`link up: reconciled iface=${nic.ifname} `).test(daemonLog()), 5000);
  });

  it('routes lost with no link event (an address re-acquired, a route of ours deleted by someone else) → repaired by the routing watch', async () => {
    const table = async () => (await sh(name, ['ip', 'route', 'show', 'table', 'all', 'dev', nic.ifname, 'proto', '199'])).trim();
    expect(await table()).to.match(/default via/);
    const repairs = async () => ((await daemonStatus(name)).last_events as Array<{ type: string; result: string }>).filter((e) => e.type === 'routing' && e.result === 'repaired').length;
    const before = await repairs();
    // What a DHCP client re-acquiring does: the kernel drops the table's routes through the
    // address silently (no netlink message for them), and the link never changes state.
    const cidr = `${nic.ips[0]}/24`;
    const between = await sh(name, ['sh', '-c', 'ip addr del "$1" dev "$2" && ip route show table all dev "$2" proto 199; ip addr add "$1" dev "$2"', 'sh', cidr, nic.ifname]);
    expect(between.trim(), 'the table routes went with the address').to.equal('');
    await waitFor('routes back after the address came back', async () => /default via/.test(await table()), 15_000, 100);
    await waitFor('a repair recorded', async () => (await repairs()) > before, 5000, 100);
    // Someone (networkd starting, an admin) deletes our route.
    const def = (await table()).split('\n').find((l) => l.startsWith('default'))!;
    const t = /table (\d+)/.exec(def)![1]!;
    await sh(name, ['ip', 'route', 'del', 'default', 'dev', nic.ifname, 'table', t, 'proto', '199']);
    await waitFor('route of ours back after its deletion', async () => /default via/.test(await table()), 15_000, 100);
  });

  it('without the udev rule, the kernel link watch queues the event and the NIC is configured', async () => {
    expect((await hotplug(name, ['uninstall'])).exitCode).to.equal(0);
    try {
      const n = await lab.attach({ name });
      await waitFor('address', async () => (await ipv4Of(name, n.ifname)).includes(n.ips[0]!), 30_000, 50);
      // The metadata poller (3 s here) may apply the new NIC before the watch's 1 s settle ends:
      // the line must come, not necessarily first.
      const queued = new RegExp(`kernel link event queued \\(not seen from udev\\) action=add iface=${n.ifname} `);
      await waitFor('kernel link event queued', async () => queued.test(daemonLog()), 10_000, 50).catch(() => {});
      expect(daemonLog()).to.match(queued);
      await lab.detach(n.ifname, { name });
      await waitRecord(name, (r) => r.mac === n.mac && r.action === 'remove', 30_000);
    } finally {
      expect((await hotplug(name, ['install'])).exitCode).to.equal(0);
    }
  });

  it('status --json shows the daemon state, queue, last events, bridge health and memory', async () => {
    // The previous test's last kernel-queued event may still be in hand.
    await waitFor('queue drained', async () => JSON.parse((await hotplug(name, ['status', '--json'])).stdout).queue.pending === 0, 15_000, 200).catch(() => {});
    const r = await hotplug(name, ['status', '--json']);
    const j = JSON.parse(r.stdout);
    expect(j.queue.pending).to.equal(0);
    expect(j.recent_events.length).to.be.greaterThan(0);
    const d = j.daemon;
    expect(d).to.include({ running: true, ready: true });
    expect(d.state).to.be.oneOf(['idle', 'busy']);
    expect(d.queue.pending).to.equal(0);
    expect(d.last_events.some((e: any) => e.type === 'event')).to.equal(true);
    expect(d.bridge).to.include.keys('pid', 'alive', 'restarts');
    expect(d.bridge.alive).to.equal(true);
    expect(d.memory).to.include.keys('node_rss_mb', 'python_rss_mb', 'total_rss_mb');
    expect(d.monitor.running).to.equal(true);
    expect(d.poller.polls).to.be.greaterThan(0);
    const text = await hotplug(name, ['status']);
    expect(text.stdout).to.match(/daemon: +running, pid \d+/);
  });
});
