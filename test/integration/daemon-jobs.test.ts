/**
 * The daemon as the front door, in the lab (t-djb): configured from user-data (`cloud_hotplug:`)
 * under config.yaml; `hotplug apply` / `refresh-metadata` as jobs of the running daemon (progress,
 * exit status, --async + wait, jobs), a daemon killed mid-job (the job failed, run again whole, the
 * network complete), the FIFO and TCP listeners, a URL source polling an endpoint served in the
 * lab's cloud namespace, and `status` listing every source with its state and where each setting
 * came from.
 */
import { expect } from 'chai';
import { execa, type ResultPromise } from 'execa';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lab, hotplug, sh, ipv4Of, readIn, assertLabGone, waitFor, labFixture, sha, startSupervisedDaemon, stopSupervisor } from './helpers.js';

const PATH_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
const NAME = 't-djb';
const URL_PORT = 8099;
/** The cloud's side of the instance's primary subnet (10.0.1.0/24). */
const URL_HOST = '10.0.1.1';
const CHANGES = '/run/url-changes';
const FIFO = '/run/cloud-hotplug/daemon.fifo';
const TOKEN = 'lab-token-0123456789abcdef';

const USERDATA = `#cloud-config
updates:
  network:
    when: [boot, hotplug]
cloud_hotplug:
  daemon:
    poll_interval_seconds: 30
    listeners:
      fifo:
        enabled: true
    url_sources:
      - url: http://${URL_HOST}:${URL_PORT}/change
        interval_seconds: 1
        policy:
          run: [/bin/sh, -c, 'echo "$HOTPLUG_ETAG" >> ${CHANGES}']
`;
const CONFIG = 'retry:\n  budget_seconds: 20\ndaemon:\n  poll_interval_seconds: 3\n';

/** The endpoint: ETag from a file the test rewrites; counts conditional requests. */
const SERVER_JS = `
const http = require('http'); const fs = require('fs');
const [host, port, tagFile, statsFile] = process.argv.slice(1);
let conditional = 0, notModified = 0, all = 0;
http.createServer((req, res) => {
  all++;
  const tag = fs.readFileSync(tagFile, 'utf8').trim();
  if (req.headers['if-none-match']) conditional++;
  if (req.headers['if-none-match'] === tag) { notModified++; res.writeHead(304); res.end(); }
  else { res.writeHead(200, { ETag: tag }); res.end('changed ' + tag); }
  fs.writeFileSync(statsFile, JSON.stringify({ all, conditional, notModified }));
}).listen(Number(port), host, () => console.log('listening'));`;

/** Hostile lines into the FIFO (node inside the instance), then a kick. */
const FIFO_JS = `
const fs = require('fs');
const [path, n] = process.argv.slice(1);
let seed = 11; const r = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
const fd = fs.openSync(path, 'w');
for (let i = 0; i < Number(n); i++) {
  const k = Math.floor(r() * 5);
  const line = k === 0 ? Buffer.from(Array.from({ length: 80 }, () => 1 + Math.floor(r() * 255))).toString('latin1').replace(/\\n/g, '') + '\\n'
    : k === 1 ? JSON.stringify({ op: 'status', pad: 'x'.repeat(100000) }) + '\\n'
    : k === 2 ? '{"op":"kick","id":' + '\\n'
    : k === 3 ? JSON.stringify({ op: 'submit', kind: 'reboot' }) + '\\n'
    : '[1,2,3]\\n';
  fs.writeSync(fd, line);
}
fs.writeSync(fd, '{"op":"kick"}\\n');
fs.closeSync(fd);`;

/** Hostile frames for the TCP listener, then a good status (node inside the instance). */
const TCP_JS = `
const net = require('net');
const [port, token, n] = process.argv.slice(1);
function ask(data, wantReplies) {
  return new Promise((resolve) => {
    const c = net.createConnection({ host: '127.0.0.1', port: Number(port) }); let buf = ''; const out = [];
    const t = setTimeout(() => { c.destroy(); resolve(out); }, 1000);
    c.on('connect', () => c.write(data));
    c.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { out.push(JSON.parse(buf.slice(0, i))); buf = buf.slice(i + 1); } if (out.length >= wantReplies) { clearTimeout(t); c.destroy(); resolve(out); } });
    c.on('error', (e) => { clearTimeout(t); resolve([{ ok: false, error: e.code }]); });
    c.on('close', () => { clearTimeout(t); resolve(out); });
  });
}
(async () => {
  let seed = 7; const r = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const frames = [];
  for (let i = 0; i < Number(n); i++) {
    const k = Math.floor(r() * 6);
    frames.push(k === 0 ? Buffer.from(Array.from({ length: 50 }, () => Math.floor(r() * 256))).toString('latin1').replace(/\\n/g, '') + '\\n'
      : k === 1 ? JSON.stringify({ op: 'apply', token: 'wrong-token-xxxxxxxxxxxx' }) + '\\n'
      : k === 2 ? JSON.stringify({ op: 'status', pad: 'x'.repeat(20000), token }) + '\\n'
      : k === 3 ? '{"op":"sta'
      : k === 4 ? JSON.stringify({ op: 'jobs', limit: -1, token }) + '\\n'
      : JSON.stringify({ op: 'kick' }) + '\\n');
  }
  const errors = {};
  for (let i = 0; i < frames.length; i += 10) {
    const rs = await Promise.all(frames.slice(i, i + 10).map((f) => ask(f, 1)));
    for (const x of rs.flat()) if (x.ok === false) errors[String(x.error).replace(/[0-9]+/g, 'N').slice(0, 60)] = 1;
  }
  const good = await ask(JSON.stringify({ op: 'status', token }) + '\\n', 1);
  const noToken = await ask(JSON.stringify({ op: 'status' }) + '\\n', 1);
  console.log(JSON.stringify({ errors: Object.keys(errors), good: good[0] && good[0].ok === true && good[0].status.running, noToken: noToken[0] }));
})();`;

describe('the daemon as the front door (lab t-djb: jobs, listeners, URL source, cloud-config)', function () {
  const fx = labFixture(NAME, { mode: 'generic', install: true, config: CONFIG, userdata: USERDATA });
  let dir: string;
  let logFile: string;
  let supervisor: number | undefined;
  let server: ResultPromise | undefined;
  const daemonLog = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const tagFile = () => join(dir, 'etag');
  const statsFile = () => join(dir, 'stats.json');

  async function status(): Promise<Record<string, any>> {
    const r = await hotplug(NAME, ['status', '--json']);
    expect(r.exitCode, r.stderr).to.equal(0);
    return JSON.parse(r.stdout) as Record<string, any>;
  }
  const readyDaemon = (notPid?: number) =>
    waitFor('daemon ready', async () => {
      const d = (await status()).daemon;
      return d.running && d.ready && d.bridge?.alive && d.pid !== notPid ? d : null;
    }, 60_000, 200);
  const jobs = async () => JSON.parse((await hotplug(NAME, ['jobs', '--json'])).stdout).jobs as Record<string, any>[];

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 't-djb-'));
    logFile = join(dir, 'daemon.log');
    writeFileSync(tagFile(), '"v1"');
    await fx.boot();
    // The endpoint, in the lab's cloud netns (the instance's gateway on its primary subnet).
    server = execa('nsenter', [`--net=/run/netns/${lab.labPaths(NAME).netnsCloud}`, '--', process.execPath, '-e', SERVER_JS, URL_HOST, String(URL_PORT), tagFile(), statsFile()], { reject: false, env: PATH_ENV, extendEnv: false });
    await waitFor('URL endpoint listening', async () => existsSync(statsFile()) || (await lab.exec(['/usr/bin/curl', '-s', '-o', '/dev/null', `http://${URL_HOST}:${URL_PORT}/`], { name: NAME, cleanEnv: true, env: PATH_ENV })).exitCode === 0, 15_000, 200);
    supervisor = await startSupervisedDaemon(NAME, logFile);
    await readyDaemon();
  });

  after(async function () {
    await stopSupervisor(supervisor);
    server?.kill('SIGTERM');
    await server?.catch(() => {});
    if (process.env.T_DJB_KEEP_LOG) process.stderr.write(`      daemon log: ${logFile}\n`);
    else rmSync(dir, { recursive: true, force: true });
    await fx.teardown();
    expect(await assertLabGone(NAME)).to.deep.equal([]);
  });

  it('config from user-data (cloud_hotplug) under config.yaml, key by key; status shows where each setting came from and every source with its state', async () => {
    const st = await status();
    const c = st.daemon.config;
    expect(c.cloud_config).to.deep.equal({ state: 'read' });
    expect(c.poll_interval_seconds).to.equal(3);
    expect(c.origins).to.include({
      'daemon.poll_interval_seconds': 'config.yaml',
      'retry.budget_seconds': 'config.yaml',
      'daemon.listeners.fifo.enabled': 'cloud-config',
      'daemon.url_sources': 'cloud-config',
      'events.add': 'default',
    });
    const sources = Object.fromEntries((st.daemon.sources as { name: string; state: string }[]).map((s) => [s.name, s.state]));
    expect(sources).to.deep.include({
      'udev queue': 'watching',
      'kernel link watch': 'running',
      'routing watch': 'running',
      'metadata poller': 'armed',
      'listener unix': 'listening',
      'listener fifo': 'listening',
      'listener tcp': 'disabled',
    });
    expect(sources[`url http://${URL_HOST}:${URL_PORT}/change`]).to.be.oneOf(['ok', 'starting']);
    const text = (await hotplug(NAME, ['status'])).stdout;
    expect(text).to.match(/sources:/);
    expect(text).to.match(/listener fifo +listening/);
    expect(text).to.match(/daemon\.poll_interval_seconds += 3 \(config\.yaml\)/);
  });

  it('hotplug apply runs as a job of the daemon: progress on stderr, the result on stdout, exit 0; jobs lists it done', async () => {
    const nic = await lab.attach({ name: NAME });
    await waitFor('NIC configured by its event', async () => (await ipv4Of(NAME, nic.ifname)).includes(nic.ips[0]!), 60_000, 100);
    const r = await hotplug(NAME, ['apply']);
    expect(r.exitCode, r.stderr).to.equal(0);
    const id = /job (\S+) submitted to the daemon/.exec(r.stderr)?.[1];
    expect(id, r.stderr).to.be.a('string');
    expect(r.stderr).to.include(`job ${id}: refreshing metadata`);
    expect(r.stderr).to.include(`job ${id}: reconciling policy routing`);
    expect(r.stdout).to.match(new RegExp(`^applied: .*\\b${nic.ifname}\\b.*, refreshed\\)`));
    const j = (await jobs()).find((x) => x.id === id)!;
    expect(j).to.include({ kind: 'apply', state: 'done', via: 'socket' });
    expect(j.duration_ms).to.be.a('number');
    expect(daemonLog()).to.match(new RegExp(`job done job=${id} kind=apply`));
    const table = (await hotplug(NAME, ['jobs'])).stdout;
    expect(table).to.match(new RegExp(`^${id} +apply +done +\\d+`, 'm'));
  });

  it('--async prints a job id at once; wait streams it to the end with the job\'s exit status; refresh-metadata likewise, and a failed job exits non-zero with nothing changed', async () => {
    const a = await hotplug(NAME, ['apply', '--async']);
    expect(a.exitCode, a.stderr).to.equal(0);
    const id = a.stdout.trim();
    expect(id).to.match(/^[a-z0-9]{6,12}-[0-9a-f]{6}$/);
    const w = await hotplug(NAME, ['wait', id]);
    expect(w.exitCode, w.stderr).to.equal(0);
    expect(w.stdout).to.match(/^applied: /);
    const rf = await hotplug(NAME, ['refresh-metadata', '--async', '--json']);
    const rid = JSON.parse(rf.stdout).id as string;
    const rw = await hotplug(NAME, ['wait', rid, '--json']);
    expect(rw.exitCode, rw.stderr).to.equal(0);
    expect(JSON.parse(rw.stdout).summary.datasource).to.match(/^DataSourceEc2/);
    // The metadata service fails: the job fails, the command exits 1, the cache is untouched.
    const before = await sha(NAME, '/var/lib/cloud/instance/obj.pkl');
    await lab.setFault({ mode: 'http500', pathPrefix: 'meta-data' }, { name: NAME });
    try {
      const bad = await hotplug(NAME, ['refresh-metadata']);
      expect(bad.exitCode).to.equal(1);
      expect(bad.stderr).to.match(/hotplug: job \S+ failed: /);
    } finally {
      await lab.clearFault({ name: NAME });
    }
    expect(await sha(NAME, '/var/lib/cloud/instance/obj.pkl')).to.equal(before);
  });

  it('the daemon killed mid-job → the supervisor restarts it; the job is marked failed (interrupted) and run again whole; the network ends complete', async () => {
    const before = (await status()).daemon;
    // A full crawl reads the instance identity (the poller's network-only crawl does not): slow
    // answers there (within the crawl's 2 s timeout) hold the apply job running for a few seconds.
    await lab.setFault({ mode: 'slow', delayMs: 1500, pathPrefix: 'dynamic' }, { name: NAME });
    let id = '';
    try {
      const a = await hotplug(NAME, ['apply', '--async']);
      id = a.stdout.trim();
      // Read the daemon's own job file (no process started per poll: under load a `hotplug jobs`
      // per poll can take longer than the job's running window).
      const jobState = async () => {
        const t = await readIn(NAME, `/run/cloud-hotplug/jobs/${id}.json`);
        return t ? (JSON.parse(t) as { state?: string }).state : undefined;
      };
      await waitFor('job running', async () => (await jobState()) === 'running', 30_000, 20);
      process.kill(before.pid, 'SIGKILL');
    } finally {
      await lab.clearFault({ name: NAME });
    }
    await readyDaemon(before.pid);
    const w = await hotplug(NAME, ['wait', id]);
    expect(w.exitCode).to.equal(1);
    const m = new RegExp(`job ${id} failed: interrupted: daemon pid ${before.pid} stopped while the job was running; run again as job (\\S+)`).exec(w.stderr);
    expect(m, w.stderr).to.not.equal(null);
    const again = await hotplug(NAME, ['wait', m![1]!]);
    expect(again.exitCode, again.stderr).to.equal(0);
    const j = (await jobs()).find((x) => x.id === m![1])!;
    expect(j).to.include({ state: 'done', rerun_of: id, via: 'daemon (re-run)' });
    // Complete: every NIC in metadata has its addresses, the last apply is ok.
    for (const n of (await lab.showMetadata({ name: NAME })).model.nics) for (const ip of n.ips) expect(await ipv4Of(NAME, n.ifname!), `${ip} on ${n.ifname}`).to.include(ip);
    expect(JSON.parse((await readIn(NAME, '/run/cloud-hotplug/last-apply.json'))!).result).to.equal('ok');
  });

  it('FIFO: 0600 root; one JSON request per line (a kick, an apply as a job); garbage is refused in the log and the daemon answers on', async () => {
    expect((await sh(NAME, ['stat', '-c', '%F %a %U', FIFO])).trim()).to.equal('fifo 600 root');
    const kicks = (await status()).daemon.stats.kicks as number;
    await sh(NAME, ['sh', '-c', `printf '%s\\n' 'not json' '{"op":"explode"}' '{"op":"kick"}' '{"op":"apply","refresh":false}' > ${FIFO}`]);
    await waitFor('kick handled', async () => (await status()).daemon.stats.kicks > kicks, 10_000, 100);
    await waitFor('apply job from the FIFO done', async () => (await jobs()).some((j) => j.via === 'fifo' && j.state === 'done'), 60_000, 200);
    expect(daemonLog()).to.match(/FIFO request refused path=\/run\/cloud-hotplug\/daemon\.fifo error="malformed request: not JSON/);
    expect(daemonLog()).to.match(/FIFO request refused .*error="unknown op \\"explode\\"/);
    // 300 hostile lines from a writer in the instance (garbage, 100 kB lines, half lines, bad
    // values), then a kick: handled, and the daemon answers status.
    const k2 = (await status()).daemon.stats.kicks as number;
    const r = await lab.exec([process.execPath, '-e', FIFO_JS, FIFO, '300'], { name: NAME, cleanEnv: true, env: PATH_ENV, timeoutMs: 60_000 });
    expect(r.exitCode, r.stderr).to.equal(0);
    await waitFor('the kick after the barrage', async () => (await status()).daemon.stats.kicks > k2, 30_000, 200);
    const fifo = ((await status()).daemon.listeners as Record<string, any>[]).find((l) => l.kind === 'fifo')!;
    expect(fifo.state).to.equal('listening');
    expect(fifo.errors).to.be.greaterThan(100);
  });

  it('URL source: the endpoint in the cloud netns is polled with If-None-Match (304s); a new ETag runs the configured policy', async () => {
    await waitFor('conditional requests answered 304', async () => existsSync(statsFile()) && JSON.parse(readFileSync(statsFile(), 'utf8')).notModified >= 2, 20_000, 200);
    writeFileSync(tagFile(), '"v2"');
    await waitFor('policy ran with the new ETag', async () => ((await readIn(NAME, CHANGES)) ?? '').includes('"v2"'), 20_000, 200);
    const src = ((await status()).daemon.sources as Record<string, any>[]).find((s) => s.name.startsWith('url '))!;
    expect(src.state).to.equal('ok');
    expect(src.etag).to.equal('"v2"');
  });

  it('TCP, enabled by a reload: a token from a 0600 file; 200 hostile frames are refused with reasons and the daemon answers a good request', async () => {
    await lab.writeFileInInstance('/etc/cloud-hotplug/tcp.token', TOKEN + '\n', { name: NAME, mode: 0o600 });
    await lab.writeFileInInstance('/etc/cloud-hotplug/config.yaml', CONFIG + '  listeners:\n    tcp:\n      enabled: true\n      port: 7117\n      requests_per_second: 100\n', { name: NAME });
    const pid = (await status()).daemon.pid as number;
    process.kill(pid, 'SIGHUP');
    await waitFor('tcp listening', async () => ((await status()).daemon.listeners as Record<string, any>[]).find((l) => l.kind === 'tcp')?.state === 'listening', 15_000, 200);
    const r = await lab.exec([process.execPath, '-e', TCP_JS, '7117', TOKEN, '200'], { name: NAME, cleanEnv: true, env: PATH_ENV, timeoutMs: 120_000 });
    const out = JSON.parse(r.stdout) as { errors: string[]; good: boolean; noToken: Record<string, unknown> };
    expect(out.good, r.stderr).to.equal(true);
    expect(out.noToken).to.deep.equal({ ok: false, op: 'status', error: 'unauthorized: a token is required for status (every request needs one)' });
    expect(out.errors).to.include('unauthorized: bad token');
    expect(out.errors.some((e) => e.startsWith('request longer than N bytes; closing'))).to.equal(true);
    const st = await status();
    expect(st.daemon.pid).to.equal(pid);
    expect(st.daemon.config.origins['daemon.listeners.tcp.enabled']).to.equal('config.yaml');
  });
});
