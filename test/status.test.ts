/**
 * `hotplug status` without a lab: it answers from the record the last session wrote, without
 * starting Python, while cloud-init's inputs are unchanged; it falls back to a bridge session when
 * nothing is recorded, when the record is stale, or with --live; and it never touches the apply lock.
 *
 * PYTHON_BIN points at a stand-in that only leaves a mark and exits: the mark appearing is the proof
 * that status started "Python" (a bridge session), its absence that it did not.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './helpers/run.js';
import { cloudInputs, type InstanceRecord } from '../src/record/instance.js';

describe('hotplug status: from the record, without Python', function () {
  this.timeout(60_000);
  let root: string;
  let mark: string;
  let objPkl: string;
  let recordFile: string;
  const summary = {
    datasource: 'DataSourceEc2Local',
    instance_id: 'i-0123456789abcdef0',
    hotplug: { enabled: true, reason: 'datasource supports hotplug and updates.network.when has hotplug' },
    macs: ['02:00:00:00:00:01', '02:00:00:00:00:02'],
  };

  const status = async (...args: string[]) => {
    const t0 = Date.now();
    const r = await execa(process.execPath, [CLI, 'status', '--json', ...args], {
      env: { HOTPLUG_ROOT: root, PYTHON_BIN: join(root, 'fake-python'), PATH: process.env.PATH ?? '/usr/bin:/bin' },
      extendEnv: false,
      reject: false,
      timeout: 50_000,
    });
    return { r, ms: Date.now() - t0, j: r.exitCode === 0 ? (JSON.parse(r.stdout) as Record<string, any>) : null };
  };
  const writeRecord = (time: string) => {
    const rec: InstanceRecord = { time, by: 'worker', inputs: cloudInputs(objPkl), summary };
    mkdirSync(join(root, 'run/cloud-hotplug'), { recursive: true });
    writeFileSync(recordFile, JSON.stringify(rec));
  };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'hp-status-'));
    mark = join(root, 'python-started');
    objPkl = join(root, 'var/lib/cloud/instance/obj.pkl');
    recordFile = join(root, 'run/cloud-hotplug/instance.json');
    mkdirSync(join(root, 'var/lib/cloud/instance'), { recursive: true });
    writeFileSync(objPkl, 'not really a pickle\n', { mode: 0o600 });
    mkdirSync(join(root, 'run/cloud-init'), { recursive: true });
    writeFileSync(join(root, 'run/cloud-init/result.json'), '{"v1":{"datasource":"DataSourceEc2Local","errors":[]}}\n');
    writeFileSync(join(root, 'fake-python'), `#!/bin/sh\necho "$$" >> '${mark}'\nexit 1\n`, { mode: 0o755 });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('nothing recorded: a bridge session (Python started), source live "nothing recorded"; the old fields keep their meaning', async () => {
    const { r, j } = await status();
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(existsSync(mark), 'python started').to.equal(true);
    expect(j!.source).to.include({ from: 'live', reason: 'nothing recorded' });
    expect(j!.datasource).to.equal(null);
    expect(j!.hotplug.enabled).to.equal(null);
    expect(j!.hotplug.reason).to.be.a('string').and.not.equal('');
  });

  it('a current record: answered from it, no Python started, with where it came from and its age', async () => {
    writeRecord(new Date(Date.now() - 5_000).toISOString());
    const { r, j, ms } = await status();
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(existsSync(mark), 'python started').to.equal(false);
    expect(j!.datasource).to.equal(summary.datasource);
    expect(j!.instance_id).to.equal(summary.instance_id);
    expect(j!.hotplug).to.deep.equal(summary.hotplug);
    expect(j!.interfaces_in_metadata).to.deep.equal(summary.macs);
    expect(j!.cloud_init.status).to.equal('done');
    expect(j!.source.from).to.equal('record');
    expect(j!.source.by).to.equal('worker');
    expect(j!.source.age_s).to.be.within(4, 60);
    expect(ms).to.be.below(20_000);
    // The text form says so too.
    const text = await execa(process.execPath, [CLI, 'status'], { env: { HOTPLUG_ROOT: root, PYTHON_BIN: join(root, 'fake-python') }, reject: false });
    expect(text.stdout).to.match(/source: +record \(by worker\), [\d.]+ s old/);
    expect(existsSync(mark)).to.equal(false);
  });

  it('a stale record (obj.pkl rewritten since) is not used: a bridge session, and why', async () => {
    writeRecord(new Date().toISOString());
    const st = statSync(objPkl);
    utimesSync(objPkl, st.atime, new Date(st.mtimeMs + 10_000));
    const { r, j } = await status();
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(existsSync(mark), 'python started').to.equal(true);
    expect(j!.source.from).to.equal('live');
    expect(j!.source.reason).to.match(/record stale: .*obj\.pkl changed/);
    expect(j!.datasource).to.equal(null); // not the record's
  });

  it('--live: a bridge session even with a current record', async () => {
    writeRecord(new Date().toISOString());
    const { r, j } = await status('--live');
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(existsSync(mark), 'python started').to.equal(true);
    expect(j!.source).to.include({ from: 'live', reason: '--live' });
  });

  it('never touches the apply lock: answers while a worker holds it, and leaves its pid alone', async () => {
    writeRecord(new Date().toISOString());
    const lockFile = join(root, 'run/cloud-hotplug/apply.lock');
    writeFileSync(lockFile, '424242\n', { mode: 0o600 });
    let holder: ChildProcess | undefined;
    try {
      // Its own process group: flock's command (sleep) shares the locked file description.
      holder = spawn('flock', ['-x', lockFile, 'sleep', '60'], { stdio: 'ignore', detached: true });
      await new Promise((res) => setTimeout(res, 300));
      const held = await execa('flock', ['-n', '-E', '75', lockFile, 'true'], { reject: false });
      expect(held.exitCode, 'the stand-in worker holds the lock').to.equal(75);
      const before = statSync(lockFile);
      const { r, j, ms } = await status();
      expect(r.exitCode, r.stderr).to.equal(0);
      expect(j!.source.from).to.equal('record');
      expect(ms).to.be.below(20_000);
      const after = statSync(lockFile);
      expect(readFileSync(lockFile, 'utf8')).to.equal('424242\n');
      expect(after.mtimeMs).to.equal(before.mtimeMs);
      expect(holder.exitCode, 'the holder was not disturbed').to.equal(null);
    } finally {
      if (holder?.pid) process.kill(-holder.pid, 'SIGKILL');
    }
  });
});
