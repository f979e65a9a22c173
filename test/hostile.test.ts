/**
 * Hostile input at the edges, without a lab: udev environments and `hotplug handle` arguments
 * with path traversal, spaces, newlines, shell metacharacters and over-long or slash-bearing
 * interface names, through all three entry points (the installed sh program, node's hook.js,
 * `hotplug handle`); and symlinks planted where state is written. Everything is refused with a
 * log line; nothing is queued, executed or written through a link.
 *
 * The programs run with HOTPLUG_ROOT set to a scratch root, so nothing outside it is touched.
 */
import { expect } from 'chai';
import { mkdtemp, rm, mkdir, writeFile, readFile, readdir, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { CLI, ROOT } from './helpers/run.js';
import { validateEvent, eventFromUdevEnv, validateDevpath, validateIfname } from '../src/events/event.js';
import { enqueue, list } from '../src/events/queue.js';
import { acquireLock } from '../src/lock.js';
import { writeFileAtomic } from '../src/util/atomic.js';
import { recordFigures, recordChecks } from './support/figures.js';

const SH_HOOK = join(ROOT, 'bin/hotplug-udev-hook');
const NODE_HOOK = join(ROOT, 'dist/src/hook.js');

/** Inputs no entry point may accept. MARK is replaced by a file that must never appear. */
const BAD_DEVPATHS = [
  '/devices/../../etc/passwd',
  '/devices/virtual/net/..',
  '/devices/virtual/net/eth9/../../../../run/x',
  '/devices/virtual/net/eth 9',
  '/devices/virtual/net/eth9\nACTION=remove',
  '/devices/$(touch MARK)',
  '/devices/`touch MARK`',
  '/devices/x;touch MARK',
  '/devices/x|touch MARK',
  '/devices/x&&touch MARK',
  "/devices/x'\"",
  'devices/virtual/net/eth9',
  '/sys/class/net/eth9',
  '/devices/' + 'a'.repeat(5000),
];
const BAD_IFNAMES = [
  'eth0123456789012', // 16 bytes
  'ééééééééé', // 9 characters, 18 bytes
  'a/b',
  '../eth0',
  '.',
  '..',
  'eth0;touch MARK',
  'eth0 x',
  'eth\n0',
  '$(touch MARK)',
  '`touch MARK`',
  '-rf',
];

interface Case {
  label: string;
  action: string;
  iface: string;
  devpath: string;
  extra?: Record<string, string>;
}

const cases: Case[] = [
  ...BAD_DEVPATHS.map((d) => ({ label: `devpath ${JSON.stringify(d.slice(0, 40))}`, action: 'add', iface: 'eth9', devpath: d })),
  ...BAD_IFNAMES.map((i) => ({ label: `ifname ${JSON.stringify(i)}`, action: 'add', iface: i, devpath: '/devices/virtual/net/eth9' })),
  { label: 'SEQNUM with shell syntax', action: 'add', iface: 'eth9', devpath: '/devices/virtual/net/eth9', extra: { SEQNUM: '1;touch MARK' } },
];

describe('hostile input at the hook and planted symlinks (no lab)', function () {
  this.timeout(120_000);
  let root: string;
  let mark: string;
  let rejected = 0;
  let t0 = Date.now();

  before(async () => {
    t0 = Date.now();
    root = await mkdtemp(join(tmpdir(), 'hp-hostile-'));
    mark = join(root, 'pwned');
    // A finished boot, so that a worker (if a guard failed and one were started) exits at once.
    await mkdir(join(root, 'run/cloud-init'), { recursive: true });
    await writeFile(join(root, 'run/cloud-init/result.json'), '{"v1": {"errors": []}}\n');
  });
  after(async function () {
    await rm(root, { recursive: true, force: true });
    // The lab half (test/integration/reliability-hostile.test.ts) records its own figures.
    recordFigures('hostile-unit', {
      what: 'hostile udev env / handle args through sh hook, hook.js and handle; planted symlinks',
      events: 0,
      faults: 0,
      crashes: 0,
      rejected,
      // no event here is meant to be handled, so none can be lost: not measured
      lost: null,
      seconds: (Date.now() - t0) / 1000,
    });
    recordChecks('hostile-unit', this.test?.parent);
  });

  const queued = async () => (await readdir(join(root, 'run/cloud-hotplug/queue')).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
  const logText = async () => readFile(join(root, 'var/log/cloud-hotplug.log'), 'utf8').catch(() => '');
  const sub = (s: string) => s.replace(/MARK/g, mark);

  const entries: { name: string; run: (c: Case) => Promise<{ exitCode?: number; stderr: string }> }[] = [
    {
      name: 'udev sh program',
      run: (c) =>
        execa('/bin/sh', [SH_HOOK, '/bin/true', '/nonexistent/cli.js'], {
          env: { ACTION: c.action, INTERFACE: sub(c.iface), DEVPATH: sub(c.devpath), HOTPLUG_ROOT: root, ...(c.extra ? { SEQNUM: sub(c.extra.SEQNUM!) } : {}) },
          extendEnv: false,
          reject: false,
        }),
    },
    {
      name: 'node hook.js (udev environment)',
      run: (c) =>
        execa(process.execPath, [NODE_HOOK], {
          env: { ACTION: c.action, INTERFACE: sub(c.iface), DEVPATH: sub(c.devpath), HOTPLUG_ROOT: root, ...(c.extra ? { SEQNUM: sub(c.extra.SEQNUM!) } : {}) },
          extendEnv: false,
          reject: false,
        }),
    },
    {
      name: 'hotplug handle --action/--iface/--devpath',
      run: (c) =>
        execa(process.execPath, [CLI, 'handle', '--action', c.action, '--iface', sub(c.iface), '--devpath', sub(c.devpath)], {
          env: { HOTPLUG_ROOT: root, PATH: process.env.PATH ?? '/usr/bin:/bin' },
          extendEnv: false,
          reject: false,
        }),
    },
  ];

  for (const entry of entries) {
    it(`${entry.name}: every hostile devpath, interface name and SEQNUM is refused with a log line; nothing queued or run`, async () => {
      const bad: string[] = [];
      for (const c of entry === entries[2] ? cases.filter((x) => !x.extra) : cases) {
        const problems = bad.length;
        const logBefore = (await logText()).length;
        const q0 = new Set(await queued());
        const r = await entry.run(c);
        const line = (await logText()).slice(logBefore);
        if (r.exitCode === 0) bad.push(`${c.label}: exit 0`);
        if (!/hook rejected event: /.test(line)) bad.push(`${c.label}: no "hook rejected event" log line (${JSON.stringify(line.slice(0, 120))})`);
        if (/[\n].+/.test(line.trim())) bad.push(`${c.label}: the log line was split: ${JSON.stringify(line)}`);
        const q1 = (await queued()).filter((n) => !q0.has(n));
        if (q1.length) bad.push(`${c.label}: queued ${q1.join(',')}`);
        if (existsSync(mark)) bad.push(`${c.label}: executed (${mark} exists)`);
        if (bad.length === problems) rejected++; // refused exactly as expected
      }
      expect(bad).to.deep.equal([]);
    });
  }

  it('the validators themselves: path traversal, spaces, newlines, metacharacters, long or slash-bearing names', () => {
    for (const d of BAD_DEVPATHS) expect(() => validateDevpath(sub(d)), d).to.throw(/invalid devpath/);
    for (const i of BAD_IFNAMES) expect(() => validateIfname(sub(i)), i).to.throw(/invalid interface name/);
    // Error messages never echo control characters (a log line stays one line).
    expect(() => validateIfname('eth\n0')).to.throw().with.property('message').that.does.not.include('\n');
    expect(() => eventFromUdevEnv({ ACTION: 'add', INTERFACE: 'eth1', DEVPATH: '/devices/virtual/net/eth1', HOTPLUG_MAC: '02:00:00:00:00:01;touch x' }, { root })).to.throw(/invalid MAC/);
    expect(() => validateEvent({ id: '../../x', action: 'add', ifname: 'eth1', devpath: '/devices/x', time: 1 })).to.throw(/invalid event id/);
    rejected += BAD_DEVPATHS.length + BAD_IFNAMES.length + 3;
  });

  describe('symlinks planted where state is written', () => {
    let dir: string;
    let target: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'hp-plant-'));
      target = join(dir, 'target');
      await writeFile(target, 'precious\n', { mode: 0o600 });
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));
    const ev = (id = 'aaaaaaaaaaaaaaaa') => ({ id, action: 'add' as const, ifname: 'eth9', devpath: '/devices/virtual/net/eth9', time: 1_700_000_000_000, mac: '02:00:00:00:00:09' });

    it('a queue directory that is a symlink is refused (nothing written where it points)', async () => {
      const elsewhere = join(dir, 'elsewhere');
      await mkdir(elsewhere, { mode: 0o700 });
      const q = join(dir, 'queue');
      await symlink(elsewhere, q);
      expect(String(await enqueue(ev(), q).then(() => 'queued', (e: Error) => e.message))).to.match(/refusing queue directory .*symlink/);
      let e: unknown;
      await enqueue(ev(), q).catch((x) => (e = x));
      expect(String(e)).to.match(/refusing queue directory .*symlink/);
      expect(await readdir(elsewhere)).to.deep.equal([]);
      expect(String(await list(q).catch((x) => x))).to.match(/refusing queue directory/);
      rejected += 3;
    });

    it('a queue directory writable by others is refused', async () => {
      const q = join(dir, 'queue');
      await mkdir(q, { mode: 0o700 });
      await execa('chmod', ['0777', q]);
      expect(String(await enqueue(ev(), q).then(() => 'queued', (e: Error) => e.message))).to.match(/writable by group or others/);
      rejected++;
    });

    it('a queue entry that is a symlink (even to a valid event), a FIFO or a huge file is quarantined, never read through or acted on', async () => {
      const q = join(dir, 'queue');
      await mkdir(q, { mode: 0o700 });
      const good = ev('bbbbbbbbbbbbbbbb');
      const outside = join(dir, 'outside.json');
      await writeFile(outside, JSON.stringify(good) + '\n');
      await symlink(outside, join(q, `${String(good.time).padStart(13, '0')}-${'0'.repeat(20)}-${good.id}.json`));
      await symlink(target, join(q, `${String(good.time).padStart(13, '0')}-${'0'.repeat(20)}-cccccccccccccccc.json`));
      await execa('mkfifo', [join(q, `${String(good.time).padStart(13, '0')}-${'0'.repeat(20)}-dddddddddddddddd.json`)]);
      await writeFile(join(q, `${String(good.time).padStart(13, '0')}-${'0'.repeat(20)}-eeeeeeeeeeeeeeee.json`), JSON.stringify({ ...good, id: 'eeeeeeeeeeeeeeee', pad: 'x'.repeat(100_000) }));
      await enqueue(ev('ffffffffffffffff'), q);
      const got = await list(q);
      expect(got.map((e) => e.id)).to.deep.equal(['ffffffffffffffff']);
      expect((await readdir(q)).filter((n) => n.endsWith('.bad'))).to.have.length(4);
      expect(await readFile(target, 'utf8')).to.equal('precious\n');
      rejected += 4;
    });

    it('a lock file that is a symlink is refused (O_NOFOLLOW): its target is neither created nor locked', async () => {
      const lockPath = join(dir, 'apply.lock');
      const missing = join(dir, 'would-be-created');
      await symlink(missing, lockPath);
      let e: unknown;
      await acquireLock({ timeoutMs: 100, file: lockPath }).catch((x) => (e = x));
      expect((e as NodeJS.ErrnoException)?.code).to.equal('ELOOP');
      expect(existsSync(missing)).to.equal(false);
      rejected++;
    });

    it('a state file that is a symlink is never written through (atomic writer)', async () => {
      const state = join(dir, 'last-apply.json');
      await symlink(target, state);
      let e: unknown;
      await writeFileAtomic(state, '{}').catch((x) => (e = x));
      expect(String(e)).to.match(/refusing to write .*symlink/);
      expect(await readFile(target, 'utf8')).to.equal('precious\n');
      rejected++;
    });

    for (const [label, plant] of [
      ['the queue directory', 'run/cloud-hotplug/queue'],
      ['the apply lock', 'run/cloud-hotplug/apply.lock'],
      ['the daemon lock', 'run/cloud-hotplug/daemon.lock'],
    ] as const) {
      it(`a valid event through the sh program and hook.js is refused when ${label} is a planted symlink`, async () => {
        const r0 = await mkdtemp(join(tmpdir(), 'hp-plantroot-'));
        try {
          await mkdir(join(r0, 'run/cloud-hotplug'), { recursive: true, mode: 0o700 });
          await mkdir(join(r0, 'run/cloud-init'), { recursive: true });
          await writeFile(join(r0, 'run/cloud-init/result.json'), '{}\n');
          const pointed = join(dir, 'pointed');
          if (plant.endsWith('queue')) await mkdir(pointed, { mode: 0o700 });
          await symlink(pointed, join(r0, plant));
          const env = { ACTION: 'add', INTERFACE: 'eth9', DEVPATH: '/devices/virtual/net/eth9', HOTPLUG_MAC: '02:00:00:00:00:09', HOTPLUG_ROOT: r0 };
          const sh = await execa('/bin/sh', [SH_HOOK, '/bin/true', '/nonexistent/cli.js'], { env, extendEnv: false, reject: false });
          const js = await execa(process.execPath, [NODE_HOOK], { env, extendEnv: false, reject: false });
          expect(sh.exitCode, sh.stderr).to.equal(1);
          expect(sh.stderr).to.match(/refusing .*: it is a symlink/);
          expect(js.exitCode, js.stderr).to.equal(1);
          expect(js.stderr).to.match(/refusing .*symlink/);
          if (plant.endsWith('queue')) expect(await readdir(pointed)).to.deep.equal([]);
          else expect(existsSync(pointed), 'flock created the symlink target').to.equal(false);
          rejected += 2;
        } finally {
          await rm(r0, { recursive: true, force: true });
        }
      });
    }
  });
});
