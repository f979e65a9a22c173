/**
 * The real `hotplug daemon` process against an empty root (HOTPLUG_ROOT): status, kick, SIGHUP,
 * SIGTERM.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from '../src/daemon/kick.js';
import { CLI } from './helpers/run.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('daemon process against an empty root (HOTPLUG_ROOT)', function () {
  this.timeout(60_000);
  let root: string;
  let sock: string;
  let child: ChildProcess;
  let out = '';
  const env = () => ({ ...process.env, HOTPLUG_ROOT: root, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });
  const waitOut = async (re: RegExp, ms = 20_000) => {
    const end = Date.now() + ms;
    while (!re.test(out)) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${re}; output:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  before(async function () {
    // Fails rather than skips: the suite runs as root (.ci/run), and a skipped daemon test proves nothing.
    if (!isRoot) throw new Error('the daemon process tests need root');
    root = mkdtempSync(join(tmpdir(), 'hp-dmn-root-'));
    mkdirSync(join(root, 'run/cloud-init'), { recursive: true });
    writeFileSync(join(root, 'run/cloud-init/result.json'), '{"v1":{"datasource":"x","errors":[]}}');
    sock = join(root, 'run/cloud-hotplug/daemon.sock');
    child = spawn(process.execPath, [CLI, 'daemon', '--no-monitor', '--no-poll', '--socket', sock], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    await waitOut(/hotplug daemon ready/);
  });
  after(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('is ready without a cloud-init cache (bridge retried when needed), advertises itself, answers status', async () => {
    expect(out).to.match(/python bridge not ready yet/);
    const ad = JSON.parse(readFileSync(join(root, 'run/cloud-hotplug/daemon.json'), 'utf8'));
    expect(ad).to.include({ pid: child.pid, socket: sock });
    const r = await request(sock, { op: 'status' }, 5000);
    const st = r!.status as Record<string, any>;
    expect(st).to.include({ running: true, pid: child.pid, ready: true });
    expect(st.bridge).to.include({ alive: false, restarts: 0 });
    expect(st.queue).to.deep.equal({ pending: 0 });
    expect(st.memory.node_rss_mb).to.be.greaterThan(10);
    // The CLI's status asks the daemon.
    const cli = await execa(process.execPath, [CLI, 'status', '--json'], { env: env(), reject: false });
    expect(JSON.parse(cli.stdout).daemon).to.include({ running: true, pid: child.pid });
  });

  it('a kick with a queued event it cannot handle (no cache) leaves the event queued', async () => {
    const q = join(root, 'run/cloud-hotplug/queue');
    mkdirSync(q, { recursive: true, mode: 0o700 });
    const ev = { id: 'deadbeef00000001', action: 'add', ifname: 'eth9', mac: '02:00:00:00:00:09', devpath: '/devices/virtual/net/eth9', time: Date.now() };
    writeFileSync(join(q, `${String(ev.time).padStart(13, '0')}-${'0'.repeat(20)}-${ev.id}.json`), JSON.stringify(ev) + '\n', { mode: 0o600 });
    const r = await request(sock, { op: 'kick' }, 5000);
    expect(r).to.include({ ok: true, queued: 1 });
    await waitOut(/batch failed; events stay queued/);
    expect(readdirSync(q).filter((n) => n.endsWith('.json'))).to.have.length(1);
  });

  it('hotplug apply / refresh-metadata go to the daemon as jobs: without a cache the job fails, the command exits 1 with its error; jobs and wait show it', async () => {
    const cli = (args: string[]) => execa(process.execPath, [CLI, ...args], { env: env(), reject: false });
    const a = await cli(['apply']);
    expect(a.exitCode, a.stderr).to.equal(1);
    const id = /job (\S+) submitted to the daemon/.exec(a.stderr)?.[1];
    expect(a.stderr).to.match(new RegExp(`hotplug: job ${id} failed: \\S`));
    const asy = await cli(['refresh-metadata', '--async']);
    expect(asy.exitCode, asy.stderr).to.equal(0);
    const rid = asy.stdout.trim();
    const w = await cli(['wait', rid]);
    expect(w.exitCode).to.equal(1);
    expect(w.stderr).to.match(new RegExp(`^hotplug: job ${rid} failed: `, 'm'));
    const jobs = JSON.parse((await cli(['jobs', '--json'])).stdout);
    expect(jobs.from).to.equal('daemon');
    expect(jobs.jobs.map((j: { id: string; state: string }) => [j.id, j.state])).to.deep.include.members([[id, 'failed'], [rid, 'failed']]);
    expect(readdirSync(join(root, 'run/cloud-hotplug/jobs')).filter((n) => n.endsWith('.json'))).to.include(`${rid}.json`);
    // --no-daemon runs here (and fails here: no cache), never submitting a job.
    const here = await cli(['apply', '--no-daemon']);
    expect(here.exitCode).to.not.equal(0);
    expect(here.stderr).to.not.match(/submitted to the daemon/);
    const st = (await request(sock, { op: 'status' }, 5000))!.status as Record<string, any>;
    expect(st.sources.map((x: { name: string; state: string }) => `${x.name}: ${x.state}`)).to.include.members([
      'udev queue: watching',
      'kernel link watch: disabled',
      'metadata poller: disabled',
      'listener unix: listening',
      'listener fifo: disabled',
      'listener tcp: disabled',
    ]);
    expect(st.config.cloud_config.state).to.equal('unavailable');
  });

  it('SIGHUP: an invalid config is logged and the old one kept; a valid one is applied', async () => {
    const cfgFile = join(root, 'etc/cloud-hotplug/config.yaml');
    mkdirSync(join(root, 'etc/cloud-hotplug'), { recursive: true });
    writeFileSync(cfgFile, 'daemon:\n  poll_interval_seconds: nope\n');
    child.kill('SIGHUP');
    await waitOut(/config reload failed; keeping the old config .*poll_interval_seconds/);
    let st = (await request(sock, { op: 'status' }, 5000))!.status as Record<string, any>;
    expect(st.config.poll_interval_seconds).to.equal(10);
    expect(st.config.last_reload.ok).to.equal(false);
    writeFileSync(cfgFile, 'daemon:\n  poll_interval_seconds: 42\nevents:\n  link_down: ignore\n');
    child.kill('SIGHUP');
    await waitOut(/config reloaded poll_interval_seconds=42/);
    st = (await request(sock, { op: 'status' }, 5000))!.status as Record<string, any>;
    expect(st.config.poll_interval_seconds).to.equal(42);
    expect(st.config.events.link_down).to.equal('ignore');
  });

  it('holds daemon.lock (the udev program starts no worker meanwhile); a second daemon refuses to start', async () => {
    const held = await execa('flock', ['-n', '-E', '75', join(root, 'run/cloud-hotplug/daemon.lock'), 'true'], { reject: false });
    expect(held.exitCode).to.equal(75);
    const second = await execa(process.execPath, [CLI, 'daemon', '--no-monitor', '--no-poll', '--socket', join(root, 'other.sock')], { env: env(), reject: false, timeout: 30_000 });
    expect(second.exitCode).to.equal(3);
    expect(second.stderr).to.match(/another daemon already runs/);
  });

  it('SIGTERM: exits 0, removes its socket and advertisement, the queue stays on disk (handed to a worker)', async () => {
    const code = await new Promise<number | null>((r) => {
      child.once('exit', (c) => r(c));
      child.kill('SIGTERM');
    });
    expect(code).to.equal(0);
    expect(existsSync(sock)).to.equal(false);
    expect(existsSync(join(root, 'run/cloud-hotplug/daemon.json'))).to.equal(false);
    expect(out, out).to.match(/events still queued; started a worker for them queued=1/);
    expect(readdirSync(join(root, 'run/cloud-hotplug/queue')).filter((n) => n.endsWith('.json'))).to.have.length(1);
    // That worker cannot handle it either (no cache): the event is still there once it is done.
    await new Promise((r) => setTimeout(r, 3000));
    expect(readdirSync(join(root, 'run/cloud-hotplug/queue')).filter((n) => n.endsWith('.json'))).to.have.length(1);
  });
});
