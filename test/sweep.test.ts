/**
 * Stale temp files of writers killed mid-write (src/util/sweep.ts): real kill -9 of our TS and
 * Python atomic writers between creating the temp file and renaming it, then the sweep; and the
 * sweep at the start of a real `hotplug worker` and `hotplug daemon` against a scratch root
 * (HOTPLUG_ROOT). Only our names, only regular files, only our directories; each removal logged.
 */
import { expect } from 'chai';
import { mkdtempSync, mkdirSync, writeFileSync, readdirSync, readFileSync, symlinkSync, utimesSync, existsSync, rmSync, chmodSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { CLI, ROOT } from './helpers/run.js';
import { sweepStaleTemps, isOurTempName, STALE_TEMP_MS } from '../src/util/sweep.js';
import { BRIDGE_PY } from '../bridge/index.js';
import { PYTHON_BIN } from '../src/paths.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const OLD = () => new Date(Date.now() - STALE_TEMP_MS - 60_000);
const age = (p: string) => utimesSync(p, OLD(), OLD());

/** Lines `log()` writes to stderr while `fn` runs. */
async function captureLog<T>(fn: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const orig = process.stderr.write.bind(process.stderr);
  let text = '';
  (process.stderr as { write: unknown }).write = (chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  };
  try {
    const value = await fn();
    return { value, lines: text.split('\n').filter(Boolean) };
  } finally {
    (process.stderr as { write: unknown }).write = orig;
  }
}

/** Our temp files in `dir` (dot names ending .tmp). */
const temps = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('.') && n.endsWith('.tmp'));

describe('sweep of stale temp files left by killed writers', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hp-sweep-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a TS atomic write killed with -9 before its rename leaves a temp file; the sweep removes it (and logs its path), the target untouched', async () => {
    const target = join(dir, 'last-apply.json');
    writeFileSync(target, 'old\n');
    // The child dies (SIGKILL, from itself) at the fsync of the temp file: written, not renamed.
    const script = `
      import { open } from 'node:fs/promises';
      import { writeFileAtomic } from ${JSON.stringify(join(ROOT, 'dist/src/util/atomic.js'))};
      const fh = await open('/dev/null');
      Object.getPrototypeOf(fh).sync = function () { process.kill(process.pid, 'SIGKILL'); return new Promise(() => {}); };
      await fh.close();
      await writeFileAtomic(${JSON.stringify(target)}, 'new\\n');
    `;
    const r = await execa(process.execPath, ['--input-type=module', '-e', script], { reject: false });
    expect(r.signal, r.stderr).to.equal('SIGKILL');
    const left = temps(dir);
    expect(left, 'the killed write left its temp file').to.have.length(1);
    expect(isOurTempName(left[0]!), left[0]).to.equal(true);
    // Fresh: a write in progress as far as anyone can tell; kept.
    expect(await sweepStaleTemps([{ dir }])).to.deep.equal([]);
    expect(temps(dir)).to.deep.equal(left);
    age(join(dir, left[0]!));
    const { value, lines } = await captureLog(() => sweepStaleTemps([{ dir }]));
    expect(value).to.deep.equal([join(dir, left[0]!)]);
    expect(temps(dir)).to.deep.equal([]);
    expect(lines.join('\n')).to.match(new RegExp(`removed stale temp file path=${join(dir, left[0]!).replace(/[.]/g, '\\.')} age_s=\\d+`));
    expect(readFileSync(target, 'utf8')).to.equal('old\n');
  });

  it("the bridge's atomic write (obj.pkl, network-config.json, cloud-init's files) killed with -9 leaves a temp file of our pattern; the sweep removes it", async function () {
    if (!existsSync(PYTHON_BIN)) this.skip();
    const target = join(dir, 'network-config.json');
    writeFileSync(target, '{}\n');
    const py = [
      'import os, sys',
      `sys.path.insert(0, ${JSON.stringify(join(BRIDGE_PY, '..'))})`,
      'import hotplug_bridge as hb',
      'os.fsync = lambda fd: os.kill(os.getpid(), 9)',
      `hb._atomic_write(${JSON.stringify(target)}, b'{"new": 1}\\n', 0o644)`,
    ].join('\n');
    const r = await execa(PYTHON_BIN, ['-c', py], { reject: false });
    expect(r.signal, r.stderr).to.equal('SIGKILL');
    const left = temps(dir);
    expect(left, `temp file of the killed bridge write (dir: ${readdirSync(dir).join(' ')})`).to.have.length(1);
    expect(left[0]).to.match(/^\.network-config\.json\.[a-z0-9_]{8}\.tmp$/);
    age(join(dir, left[0]!));
    expect(await sweepStaleTemps([{ dir }])).to.deep.equal([join(dir, left[0]!)]);
    expect(readdirSync(dir)).to.deep.equal(['network-config.json']);
    expect(readFileSync(target, 'utf8')).to.equal('{}\n');
  });

  it("the sh program's queue temp name (.NAME.PID.tmp) is ours; names no writer of ours makes are not, however old", async () => {
    const q = join(dir, 'queue');
    mkdirSync(q, { mode: 0o700 });
    const sh = `.${'1764108000000'}-${'0'.repeat(20)}-0123456789abcdef.json.4242.tmp`;
    const strangers = ['.stranger.tmp', '.x.tmp.bak', 'obj.pkl', '.obj.pkl.ab.tmp', 'x.0123456789ab.tmp', '.network-config.json.0123456789ab', '..0123456789ab.tmp'];
    for (const n of [sh, ...strangers]) {
      writeFileSync(join(q, n), 'x');
      age(join(q, n));
    }
    expect(await sweepStaleTemps([{ dir: q }])).to.deep.equal([join(q, sh)]);
    expect(readdirSync(q).sort()).to.deep.equal([...strangers].sort());
  });

  it('never follows or removes a symlink, directory or FIFO with our name; skips a symlinked or group-writable directory', async () => {
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    const precious = join(outside, 'precious');
    writeFileSync(precious, 'precious\n');
    const ours = join(dir, 'ours');
    mkdirSync(ours, { mode: 0o755 });
    symlinkSync(precious, join(ours, '.known-interfaces.json.0123456789ab.tmp'));
    mkdirSync(join(ours, '.recent-events.json.0123456789ab.tmp'));
    await execa('mkfifo', [join(ours, '.last-apply.json.0123456789ab.tmp')]);
    for (const n of readdirSync(ours)) utimesSync(join(ours, n), OLD(), OLD());
    // A directory that is a symlink to elsewhere: not swept, even though it holds our names.
    writeFileSync(join(outside, '.obj.pkl.abcdefgh.tmp'), 'x');
    age(join(outside, '.obj.pkl.abcdefgh.tmp'));
    symlinkSync(outside, join(dir, 'linked'));
    // A group-writable directory: someone else could swap what we unlink.
    const loose = join(dir, 'loose');
    mkdirSync(loose);
    chmodSync(loose, 0o775);
    writeFileSync(join(loose, '.x.json.0123456789ab.tmp'), 'x');
    age(join(loose, '.x.json.0123456789ab.tmp'));
    const { value, lines } = await captureLog(() => sweepStaleTemps([{ dir: ours }, { dir: join(dir, 'linked') }, { dir: loose }]));
    expect(value).to.deep.equal([]);
    expect(readdirSync(ours)).to.have.length(3);
    expect(lstatSync(join(ours, '.known-interfaces.json.0123456789ab.tmp')).isSymbolicLink()).to.equal(true);
    expect(readFileSync(precious, 'utf8')).to.equal('precious\n');
    expect(existsSync(join(outside, '.obj.pkl.abcdefgh.tmp'))).to.equal(true);
    expect(existsSync(join(loose, '.x.json.0123456789ab.tmp'))).to.equal(true);
    const text = lines.join('\n');
    expect(text).to.match(/not sweeping stale temp files dir=\S+\/linked reason="it is a symlink"/);
    expect(text).to.match(/not sweeping stale temp files dir=\S+\/loose reason="writable by group or others/);
  });

  describe('at the start of a worker and of the daemon (scratch root)', () => {
    let root: string;
    const env = () => ({ ...process.env, HOTPLUG_ROOT: root, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });
    /** Stale temp files in every directory of ours, and decoys that must stay. */
    const plant = () => {
      for (const d of ['run/cloud-init', 'run/cloud-hotplug/queue', 'var/lib/cloud-hotplug', 'var/lib/cloud/instances/i-0123', 'etc/network/interfaces.d']) {
        mkdirSync(join(root, d), { recursive: true, mode: d.endsWith('queue') ? 0o700 : 0o755 });
      }
      writeFileSync(join(root, 'run/cloud-init/result.json'), '{"v1":{"datasource":"x","errors":[]}}');
      // cloud-init's instance link (relative here: an absolute one would leave the scratch root).
      symlinkSync('instances/i-0123', join(root, 'var/lib/cloud/instance'));
      const stale = [
        'run/cloud-hotplug/.last-apply.json.0123456789ab.tmp',
        'run/cloud-hotplug/.network-config.json.k3j_x9a2.tmp',
        `run/cloud-hotplug/queue/.1764108000000-${'0'.repeat(20)}-0123456789abcdef.json.4242.tmp`,
        'var/lib/cloud-hotplug/.routing.json.fedcba987654.tmp',
        'var/lib/cloud/instance/.obj.pkl.abcdefgh.tmp',
      ];
      const keep = [
        'run/cloud-hotplug/.last-apply.json.ffffffffffff.tmp', // fresh
        'run/cloud-hotplug/notes.tmp',
        'run/cloud-init/.instance-data.json.abcdefgh.tmp', // not our directory
        'etc/network/interfaces.d/.50-cloud-init.abcdefgh.tmp', // not our directory
      ];
      for (const f of [...stale, ...keep]) writeFileSync(join(root, f), 'x');
      for (const f of [...stale, ...keep.slice(1)]) age(join(root, f));
      return { stale, keep };
    };
    beforeEach(function () {
      if (!isRoot) this.skip();
      root = mkdtempSync(join(tmpdir(), 'hp-sweep-root-'));
    });
    afterEach(() => root && rmSync(root, { recursive: true, force: true }));

    it('`hotplug worker` removes the stale ones in /run/cloud-hotplug, its queue, /var/lib/cloud-hotplug and obj.pkl’s directory, logging each; leaves the rest', async () => {
      const { stale, keep } = plant();
      const r = await execa(process.execPath, [CLI, 'worker'], { env: env(), reject: false, timeout: 30_000 });
      expect(r.exitCode, r.stderr).to.equal(0);
      for (const f of stale) {
        expect(existsSync(join(root, f)), f).to.equal(false);
        const shown = join(root, f.replace('var/lib/cloud/instance/', 'var/lib/cloud/instances/i-0123/'));
        expect(r.stderr, f).to.include(`removed stale temp file path=${shown} `);
      }
      for (const f of keep) expect(existsSync(join(root, f)), f).to.equal(true);
    });

    it('`hotplug daemon` removes them when it starts', async () => {
      const { stale, keep } = plant();
      const sock = join(root, 'run/cloud-hotplug/daemon.sock');
      const child = spawn(process.execPath, [CLI, 'daemon', '--no-monitor', '--no-poll', '--socket', sock], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      try {
        const end = Date.now() + 30_000;
        while (!/hotplug daemon ready/.test(out)) {
          if (Date.now() > end || child.exitCode !== null) throw new Error(`daemon not ready; output:\n${out}`);
          await new Promise((res) => setTimeout(res, 50));
        }
      } finally {
        const exited = new Promise((res) => child.once('exit', res));
        if (child.exitCode === null) child.kill('SIGTERM');
        await exited;
      }
      for (const f of stale) {
        expect(existsSync(join(root, f)), f).to.equal(false);
        expect(out, f).to.match(new RegExp(`removed stale temp file path=\\S+/${f.split('/').pop()!.replace(/[.]/g, '\\.')} `));
      }
      for (const f of keep) expect(existsSync(join(root, f)), f).to.equal(true);
    });
  });
});
