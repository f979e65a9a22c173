/**
 * `hotplug handle` hands its (validated) values to the installed sh program, bin/hotplug-udev-hook,
 * so the queued file is the one udev's path writes; and ensureWorker() is that program's
 * --ensure-worker mode. No lab: HOTPLUG_ROOT is a scratch root, and a stand-in daemon holds
 * daemon.lock so that no worker is started.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT } from './helpers/run.js';
import { ensureWorker } from '../src/hook.js';
import { bootMs } from '../src/util/boot-clock.js';

const SH_HOOK = join(ROOT, 'bin/hotplug-udev-hook');
const NAME_RE = /^\d{13}-\d{20}-[0-9a-f]{16}\.json$/;

describe('hotplug handle runs the sh udev program', function () {
  this.timeout(60_000);
  let root: string;
  let q: string;
  let holders: ChildProcess[] = [];

  /** A process that holds `lock` (flock) until killed, like the daemon or a worker. */
  const hold = async (lock: string) => {
    // Its own process group: flock's command (sleep) shares the locked file description, so both must go.
    const h = spawn('flock', ['-x', join(root, 'run/cloud-hotplug', lock), 'sleep', '120'], { stdio: 'ignore', detached: true });
    holders.push(h);
    for (let i = 0; i < 50; i++) {
      const r = await execa('flock', ['-n', '-E', '75', join(root, 'run/cloud-hotplug', lock), 'true'], { reject: false });
      if (r.exitCode === 75) return;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error(`could not hold ${lock}`);
  };
  const queued = () => readdirSync(q).filter((n) => n.endsWith('.json'));
  const takeOne = (before: Set<string>) => {
    const fresh = queued().filter((n) => !before.has(n));
    expect(fresh, 'exactly one file queued').to.have.length(1);
    const file = join(q, fresh[0]!);
    return { name: fresh[0]!, text: readFileSync(file, 'utf8'), mode: statSync(file).mode & 0o777 };
  };
  const handle = (args: string[], env: Record<string, string> = {}) =>
    execa(process.execPath, [CLI, 'handle', ...args], { env: { HOTPLUG_ROOT: root, PATH: '/usr/bin:/bin', ...env }, extendEnv: false, reject: false });
  const shHook = (env: Record<string, string>) =>
    execa('/bin/sh', [SH_HOOK, process.execPath, join(ROOT, 'dist/src/cli.js')], { env: { HOTPLUG_ROOT: root, ...env }, extendEnv: false, reject: false });
  const logText = () => {
    try {
      return readFileSync(join(root, 'var/log/cloud-hotplug.log'), 'utf8');
    } catch {
      return '';
    }
  };

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'hp-handle-'));
    q = join(root, 'run/cloud-hotplug/queue');
    mkdirSync(q, { recursive: true, mode: 0o700 });
    mkdirSync(join(root, 'run/cloud-init'), { recursive: true });
    writeFileSync(join(root, 'run/cloud-init/result.json'), '{"v1":{"errors":[]}}\n');
    await hold('daemon.lock');
  });
  const release = () => {
    for (const h of holders) if (h.pid) process.kill(-h.pid, 'SIGKILL');
    holders = [];
  };
  afterEach(() => {
    release();
    rmSync(root, { recursive: true, force: true });
  });

  it('--action/--iface/--devpath/--mac queue exactly the file the sh program queues for the same values', async () => {
    const vals = { ACTION: 'add', INTERFACE: 'eth9', DEVPATH: '/devices/virtual/net/eth9', HOTPLUG_MAC: '02:00:00:00:00:0a' };
    let seen = new Set(queued());
    const sh = await shHook(vals);
    expect(sh.exitCode, sh.stderr).to.equal(0);
    const a = takeOne(seen);
    seen = new Set(queued());
    // Upper-case MAC: handle normalizes it before handing it over.
    const h = await handle(['--action', 'add', '--iface', 'eth9', '--devpath', '/devices/virtual/net/eth9', '--mac', '02:00:00:00:00:0A']);
    expect(h.exitCode, h.stderr).to.equal(0);
    const b = takeOne(seen);
    for (const f of [a, b]) {
      expect(f.name).to.match(NAME_RE);
      expect(f.mode).to.equal(0o600);
    }
    const ja = JSON.parse(a.text);
    const jb = JSON.parse(b.text);
    // Same writer: same keys in the same order (the sh program's, not JSON.stringify of a validated event).
    expect(Object.keys(jb)).to.deep.equal(Object.keys(ja));
    expect(Object.keys(jb)).to.deep.equal(['id', 'action', 'ifname', 'devpath', 'seqnum', 'uptime_ms', 'mac']);
    // The event's time is on the boot clock, as is the name's (no `date` fork in the program).
    for (const [f, j] of [[a, ja], [b, jb]] as const) {
      expect(Number(f.name.slice(0, 13))).to.equal(j.uptime_ms);
      expect(j.uptime_ms).to.be.within(bootMs() - 60_000, bootMs());
    }
    for (const j of [ja, jb]) {
      delete j.id;
      delete j.uptime_ms;
    }
    expect(jb).to.deep.equal(ja);
    expect(jb).to.deep.equal({ action: 'add', ifname: 'eth9', devpath: '/devices/virtual/net/eth9', seqnum: 0, mac: '02:00:00:00:00:0a' });
    // One log line each, the sh program's; the daemon (lock holder) is left the event.
    expect(h.stderr).to.match(/^hotplug\[\d+\] info: hook queued action=add iface=eth9 mac=02:00:00:00:00:0a worker=daemon duration_ms=\d+$/m);
    expect(logText().match(/hook queued action=add iface=eth9 mac=02:00:00:00:00:0a worker=daemon/g)).to.have.length(2);
  });

  it("udev's environment (no options): SEQNUM, driver and the MAC from ID_NET_NAME_MAC reach the queue through the sh program", async () => {
    const seen = new Set(queued());
    const h = await handle([], { ACTION: 'remove', INTERFACE: 'ens5', DEVPATH: '/devices/pci0000:00/0000:00:05.0/net/ens5', SEQNUM: '4711', ID_NET_DRIVER: 'ena', ID_NET_NAME_MAC: 'enx02000000000b' });
    expect(h.exitCode, h.stderr).to.equal(0);
    const f = takeOne(seen);
    expect(f.name).to.match(/^\d{13}-0{16}4711-[0-9a-f]{16}\.json$/);
    const j = JSON.parse(f.text);
    expect(j).to.include({ action: 'remove', ifname: 'ens5', devpath: '/devices/pci0000:00/0000:00:05.0/net/ens5', seqnum: 4711, mac: '02:00:00:00:00:0b', driver: 'ena' });
  });

  it('refused values: exit 1, the "hook rejected event" log line, nothing queued; options must come together (exit 1)', async () => {
    const seen = queued().length;
    for (const args of [
      ['--action', 'change', '--iface', 'eth9', '--devpath', '/devices/virtual/net/eth9'],
      ['--action', 'add', '--iface', 'eth9', '--devpath', '/devices/virtual/net/eth9', '--mac', '02:00:00:00:00:0a;touch x'],
      ['--action', 'add', '--iface', '-rf', '--devpath', '/devices/virtual/net/eth9'],
    ]) {
      const before = logText().length;
      const r = await handle(args);
      expect(r.exitCode, args.join(' ')).to.equal(1);
      expect(logText().slice(before)).to.match(/^hotplug\[\d+\] error: hook rejected event: .+ duration_ms=[\d.]+\n$/);
    }
    const partial = await handle(['--action', 'add', '--iface', 'eth9']);
    expect(partial.exitCode).to.equal(1);
    expect(partial.stderr).to.match(/give --action, --iface and --devpath together/);
    expect(queued()).to.have.length(seen);
  });

  it('the sh program refuses an invalid HOTPLUG_MAC from a rule itself', async () => {
    const r = await shHook({ ACTION: 'add', INTERFACE: 'eth9', DEVPATH: '/devices/virtual/net/eth9', HOTPLUG_MAC: '02:00:00:00:00:0a x' });
    expect(r.exitCode).to.equal(1);
    expect(r.stderr).to.match(/hook rejected event: invalid MAC address/);
    expect(queued()).to.have.length(0);
  });

  it('ensureWorker() is the sh program\'s --ensure-worker: "daemon" while daemon.lock is held, "running" while only apply.lock is; nothing queued', async () => {
    const old = process.env.HOTPLUG_ROOT;
    process.env.HOTPLUG_ROOT = root;
    try {
      expect(ensureWorker()).to.equal('daemon');
      release();
      await new Promise((res) => setTimeout(res, 100));
      await hold('apply.lock');
      expect(ensureWorker()).to.equal('running');
    } finally {
      if (old === undefined) delete process.env.HOTPLUG_ROOT;
      else process.env.HOTPLUG_ROOT = old;
    }
    expect(queued()).to.have.length(0);
    const planted = mkdtempSync(join(tmpdir(), 'hp-handle-plant-'));
    try {
      rmSync(join(root, 'run/cloud-hotplug/daemon.lock'));
      symlinkSync(join(planted, 'x'), join(root, 'run/cloud-hotplug/daemon.lock'));
      const r = await execa('/bin/sh', [SH_HOOK, '/bin/true', '/nonexistent/cli.js', '--ensure-worker'], { env: { HOTPLUG_ROOT: root }, extendEnv: false, reject: false });
      expect(r.exitCode).to.equal(1);
      expect(r.stderr).to.match(/refusing .*daemon\.lock: it is a symlink/);
      expect(readdirSync(planted)).to.deep.equal([]);
    } finally {
      rmSync(planted, { recursive: true, force: true });
    }
  });
});
