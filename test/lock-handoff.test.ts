/**
 * The apply lock handed from the udev program to the one-shot worker (bin/hotplug-udev-hook takes it
 * on fd 9 and starts `worker --lock-fd 9`; src/lock.ts adoptHandedLock): in a storm of concurrent
 * hooks exactly one starts a worker and that worker holds the lock from its first instruction; node
 * adopts the fd only when it is the lock file, locked by that very description and close-on-exec, so
 * no child it spawns carries the lock away. Scratch HOTPLUG_ROOT, no lab; stand-in workers.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './helpers/run.js';
import { adoptHandedLock, handedLockProblem, tryLock } from '../src/lock.js';

const SH_HOOK = join(ROOT, 'bin/hotplug-udev-hook');
const LOCK_JS = pathToFileURL(join(ROOT, 'dist/src/lock.js')).href;

describe('the udev program hands the apply lock to the one worker it starts', function () {
  this.timeout(60_000);
  let root: string;
  let run: string;

  before(function () {
    // Under systemd the hook starts a transient unit instead (no hand-off): this machine has none.
    expect(existsSync('/run/systemd/system'), 'these tests exercise the no-systemd path of the hook').to.equal(false);
  });
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'chv-handoff-'));
    run = join(root, 'run/cloud-hotplug');
    mkdirSync(run, { recursive: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const hook = (node: string, cli: string, i: number) =>
    execa('/bin/sh', [SH_HOOK, node, cli], {
      reject: false,
      extendEnv: false,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOTPLUG_ROOT: root, ACTION: 'add', INTERFACE: `eth${i}`, DEVPATH: `/devices/virtual/net/eth${i}`, SEQNUM: String(100 + i) },
    });

  it('8 hooks at once: all 8 events queued, one worker started (with --lock-fd 9, holding the lock), 7 told "running"', async () => {
    // Stand-in worker: records its argv and the kernel's view of its fd 9, then holds on to it a while.
    const stub = join(root, 'worker.sh');
    writeFileSync(stub, `echo "$@" > "${root}/worker.$$.args"; cat /proc/self/fdinfo/9 > "${root}/worker.$$.fdinfo" 2>&1; sleep 2\n`);
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => hook('/bin/sh', stub, i)));
    for (const r of rs) expect(r.exitCode, r.stderr).to.equal(0);
    expect(readdirSync(join(run, 'queue')).filter((n) => n.endsWith('.json'))).to.have.length(8);
    const said = rs.map((r) => /worker=(\w+)/.exec(r.stderr)?.[1]).sort();
    expect(said).to.deep.equal(['running', 'running', 'running', 'running', 'running', 'running', 'running', 'started']);
    await new Promise((res) => setTimeout(res, 300)); // setsid -f: the worker runs on after its hook
    const args = readdirSync(root).filter((n) => n.endsWith('.args'));
    expect(args, 'worker processes started').to.have.length(1);
    expect(readFileSync(join(root, args[0]!), 'utf8').trim()).to.equal('worker --lock-fd 9');
    const info = readFileSync(join(root, args[0]!.replace('.args', '.fdinfo')), 'utf8');
    expect(info).to.match(/^lock:\s+\d+:\s+FLOCK\s+ADVISORY\s+WRITE\s/m);
    // While the worker lives, the lock is taken for everyone else.
    const other = await execa('flock', ['-n', '-E', '75', join(run, 'apply.lock'), 'true'], { reject: false });
    expect(other.exitCode).to.equal(75);
  });

  it('node adopts the handed fd: it holds the lock, a child it spawns does not get fd 9, release frees it', async () => {
    const out = join(root, 'adopt.json');
    const stub = join(root, 'worker.mjs');
    writeFileSync(
      stub,
      `import { adoptHandedLock, tryLock } from ${JSON.stringify(LOCK_JS)};
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
const lock = await adoptHandedLock(9);
const other = await tryLock();
const child = spawnSync('/bin/sh', ['-c', '[ -e /proc/self/fd/9 ] && echo inherited || echo closed'], { encoding: 'utf8' }).stdout.trim();
await lock?.release();
const after = await tryLock();
await after?.release();
writeFileSync(${JSON.stringify(out)}, JSON.stringify({ adopted: !!lock, other: !!other, child, after: !!after }));
`,
    );
    const r = await hook(process.execPath, stub, 1);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/worker=started/);
    for (let i = 0; i < 100 && !existsSync(out); i++) await new Promise((res) => setTimeout(res, 50));
    expect(JSON.parse(readFileSync(out, 'utf8'))).to.deep.equal({ adopted: true, other: false, child: 'closed', after: true });
    expect(readFileSync(join(root, 'var/log/cloud-hotplug.log'), 'utf8')).to.match(/lock acquired t=\d+ from=udev-hook cmd=/);
  });

  it('an fd that is not a locked description of the lock file is refused, closed, and the lock stays free', async () => {
    const file = join(run, 'apply.lock');
    writeFileSync(file, '');
    const unlocked = openSync(file, 'r+');
    expect(handedLockProblem(unlocked, file)).to.match(/holds no exclusive flock/);
    expect(await adoptHandedLock(unlocked, file)).to.equal(null);
    expect(() => readFileSync(`/proc/self/fdinfo/${unlocked}`)).to.throw(); // closed
    const stranger = openSync(join(root, 'other'), 'w');
    expect(handedLockProblem(stranger, file)).to.match(/is not /);
    const mine = await tryLock(file);
    expect(mine, 'the lock is still free').to.not.equal(null);
    await mine!.release();
  });
});
