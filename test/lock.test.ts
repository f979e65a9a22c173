import { expect } from 'chai';
import { mkdtempSync, rmSync, symlinkSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { acquireLock, tryLock, lockStatus, LockTimeoutError } from '../src/lock.js';

const lockJs = resolve(dirname(fileURLToPath(import.meta.url)), '../src/lock.js');

/** A separate node process that takes the lock, says "locked <pid>", runs `extra`, then idles until killed. */
function holder(file: string, timeoutMs: number, extra = ''): { child: ChildProcess; lines: string[]; wait: (re: RegExp, ms: number) => Promise<string> } {
  const code = `const { acquireLock } = await import(${JSON.stringify(lockJs)});
    console.log('waiting');
    const l = await acquireLock({ timeoutMs: ${timeoutMs}, file: ${JSON.stringify(file)} }).catch((e) => { console.log('failed ' + e.name); process.exit(3); });
    console.log('locked ' + process.pid);
    ${extra}
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  const wait = (re: RegExp, ms: number) =>
    new Promise<string>((res, rej) => {
      const t0 = Date.now();
      const iv = setInterval(() => {
        const hit = lines.find((l) => re.test(l));
        if (hit) { clearInterval(iv); res(hit); }
        else if (Date.now() - t0 > ms) { clearInterval(iv); rej(new Error(`timed out waiting for ${re}; got ${JSON.stringify(lines)}`)); }
      }, 10);
    });
  return { child, lines, wait };
}

const exited = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

describe('lock', function () {
  this.timeout(20_000);
  let dir: string;
  let file: string;
  const children: ChildProcess[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hp-lock-'));
    file = join(dir, 'run', 'apply.lock');
  });
  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) { c.kill('SIGKILL'); await exited(c); }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('is exclusive between open file descriptions, even in one process, and release frees it', async () => {
    const a = await acquireLock({ timeoutMs: 1000, file });
    expect(await tryLock(file)).to.equal(null);
    expect(readFileSync(file, 'utf8')).to.equal(`${process.pid}\n`);
    await a.release();
    await a.release(); // idempotent
    const b = await tryLock(file);
    expect(b).not.to.equal(null);
    await b!.release();
  });

  it('times out with LockTimeoutError after about timeoutMs', async () => {
    const a = await acquireLock({ timeoutMs: 1000, file });
    const t0 = Date.now();
    let err: unknown;
    try { await acquireLock({ timeoutMs: 300, file }); } catch (e) { err = e; }
    const took = Date.now() - t0;
    expect(err).to.be.instanceOf(LockTimeoutError);
    expect(took).to.be.within(250, 3000);
    await a.release();
  });

  it('a second process blocks, and gets the lock when the holder is killed -9', async () => {
    const A = holder(file, 5000);
    children.push(A.child);
    const aLine = await A.wait(/^locked/, 5000);
    expect(await lockStatus(file)).to.deep.equal({ held: true, pid: Number(aLine.split(' ')[1]) });

    const B = holder(file, 15_000);
    children.push(B.child);
    await B.wait(/^waiting/, 5000);
    await new Promise((r) => setTimeout(r, 700));
    expect(B.lines.some((l) => l.startsWith('locked'))).to.equal(false); // blocked, not failed
    expect(B.child.exitCode).to.equal(null);

    A.child.kill('SIGKILL');
    const t0 = Date.now();
    const bLine = await B.wait(/^locked/, 5000);
    expect(Date.now() - t0).to.be.below(3000);
    expect(await tryLock(file)).to.equal(null); // B holds it now
    expect((await lockStatus(file)).pid).to.equal(Number(bLine.split(' ')[1]));
  });

  it('a second process with a short timeout fails instead of waiting forever', async () => {
    const A = holder(file, 5000);
    children.push(A.child);
    await A.wait(/^locked/, 5000);
    const B = holder(file, 200);
    children.push(B.child);
    await B.wait(/^failed LockTimeoutError/, 5000);
  });

  it('children the holder spawns later do not inherit the lock (it dies with the holder)', async () => {
    const A = holder(file, 5000, `const { spawn } = await import('node:child_process');
      const s = spawn('sleep', ['30'], { stdio: 'ignore', detached: true }); s.unref(); console.log('grandchild ' + s.pid);`);
    children.push(A.child);
    const g = Number((await A.wait(/^grandchild/, 5000)).split(' ')[1]);
    try {
      A.child.kill('SIGKILL');
      await exited(A.child);
      const l = await acquireLock({ timeoutMs: 3000, file }); // would time out if `sleep` held the description
      await l.release();
    } finally {
      try { process.kill(g, 'SIGKILL'); } catch { /* already gone */ }
    }
  });

  it('lockStatus reports free when nobody holds it, without rewriting the pid', async () => {
    expect(await lockStatus(file)).to.deep.equal({ held: false }); // no file yet
    const a = await acquireLock({ timeoutMs: 1000, file });
    await a.release();
    writeFileSync(file, '999999\n');
    expect(await lockStatus(file)).to.deep.equal({ held: false });
    expect(readFileSync(file, 'utf8')).to.equal('999999\n');
  });

  it('refuses a symlink planted at the lock path', async () => {
    const target = join(dir, 'elsewhere');
    writeFileSync(target, '');
    const link = join(dir, 'link.lock');
    symlinkSync(target, link);
    let err: unknown;
    try { await acquireLock({ timeoutMs: 100, file: link }); } catch (e) { err = e; }
    expect((err as NodeJS.ErrnoException)?.code).to.equal('ELOOP');
  });
});
