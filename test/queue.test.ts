import { expect } from 'chai';
import { mkdtempSync, mkdirSync, writeFileSync, readdirSync, statSync, readFileSync, utimesSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { validateEvent, eventFromUdevEnv, type HotplugEvent } from '../src/events/event.js';
import { enqueue, list, take, ack, pendingCount, queueFileName, INCOMPLETE_GRACE_MS } from '../src/events/queue.js';
import { UserError } from '../src/util/errors.js';
import { setQuiet } from '../src/util/log.js';
import { bootMs } from '../src/util/boot-clock.js';

const good = { id: 'abc123', action: 'add', ifname: 'eth1', devpath: '/devices/pci0000:00/0000:00:05.0/net/eth1', time: 1_700_000_000_000 };

function rejects(raw: unknown, re: RegExp): void {
  let err: unknown;
  try {
    validateEvent(raw);
  } catch (e) {
    err = e;
  }
  expect(err, JSON.stringify(raw)).to.be.instanceOf(UserError);
  const msg = (err as Error).message;
  expect(msg).to.match(re);
  expect(msg).not.to.match(/[\n\r]/);
}

describe('validateEvent', () => {
  it('accepts a good event, lower-cases the MAC and drops unknown fields', () => {
    const ev = validateEvent({ ...good, mac: '02:AB:cd:00:00:01', seqnum: 42, driver: 'ena', extra: 'x' });
    expect(ev).to.deep.equal({ ...good, mac: '02:ab:cd:00:00:01', seqnum: 42, driver: 'ena' });
  });

  it('accepts Linux-style names at the edges', () => {
    for (const n of ['e', 'eth0.100', 'ens5:1', 'a'.repeat(15), 'wlan-0@x', '..a']) expect(validateEvent({ ...good, ifname: n }).ifname).to.equal(n);
  });

  it('rejects hostile interface names', () => {
    for (const n of ['', 'a'.repeat(16), 'eth0/x', '../etc', 'eth 0', 'eth0\n', '.', '..', 'ethé', '$(reboot)', 'a;b', 7, null]) {
      rejects({ ...good, ifname: n }, /interface name/);
    }
  });

  it('rejects bad devpaths', () => {
    for (const p of ['/sys/devices/x', 'devices/x', '/devices/../etc', '/devices/a/../../b', '/devices/a b', '/devices/a\nb', '/devices/$(x)', '/devices/a;b', '/devices/`x`', '/devices/' + 'a'.repeat(4090)]) {
      rejects({ ...good, devpath: p }, /devpath/);
    }
    expect(validateEvent({ ...good, devpath: '/devices/virtual/net/veth+1..x' }).devpath).to.equal('/devices/virtual/net/veth+1..x');
  });

  it('rejects bad MACs, actions, ids, times, seqnums and drivers', () => {
    for (const m of ['02:00:00:00:00', '02-00-00-00-00-01', '0200.0000.0001', '02:00:00:00:00:0g', '02:00:00:00:00:01:02']) rejects({ ...good, mac: m }, /MAC/);
    for (const a of ['change', 'move', 'ADD', undefined]) rejects({ ...good, action: a }, /action/);
    for (const id of ['', 'a/b', '../x', 'a'.repeat(65), 5]) rejects({ ...good, id }, /id/);
    for (const t of [-1, 1.5, 'now', 1e14]) rejects({ ...good, time: t }, /time/);
    for (const s of [-1, 2.5, '7']) rejects({ ...good, seqnum: s }, /seqnum/);
    rejects({ ...good, driver: 'a b' }, /driver/);
    rejects('eth0', /not an object/);
  });

  it("the udev program's uptime_ms (boot clock) becomes epoch time; one from after now, or not a number, is refused", () => {
    const { time: _t, ...noTime } = good;
    const t0 = Date.now();
    const ev = validateEvent({ ...noTime, uptime_ms: bootMs() - 5000 });
    expect(ev).to.not.have.property('uptime_ms');
    expect(Math.abs(ev.time - (t0 - 5000))).to.be.below(100); // /proc/uptime's 10 ms, plus the time between the reads
    for (const u of [-1, 1.5, '5', bootMs() + 60_000]) rejects({ ...noTime, uptime_ms: u }, /uptime_ms/);
    rejects(noTime, /time/);
  });
});

describe('eventFromUdevEnv', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'hp-ev-'));
    mkdirSync(join(root, 'sys/class/net/eth1'), { recursive: true });
    writeFileSync(join(root, 'sys/class/net/eth1/address'), '02:AA:BB:CC:DD:EE\n');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const env = (o: Record<string, string>) => ({ INTERFACE: 'eth1', DEVPATH: '/devices/pci0000:00/0000:00:05.0/net/eth1', ...o });

  it('builds an add event, reading the MAC from sysfs under the root', () => {
    const ev = eventFromUdevEnv(env({ ACTION: 'add', SEQNUM: '1234', ID_NET_DRIVER: 'ena' }), { root, now: 5 });
    expect(ev).to.include({ action: 'add', ifname: 'eth1', mac: '02:aa:bb:cc:dd:ee', seqnum: 1234, driver: 'ena', time: 5 });
    expect(ev.id).to.match(/^[0-9a-f]{16}$/);
  });

  it('never reads sysfs for remove', () => {
    const ev = eventFromUdevEnv(env({ ACTION: 'remove' }), { root });
    expect(ev.action).to.equal('remove');
    expect(ev.mac).to.equal(undefined);
  });

  it('prefers a MAC udev gives (HOTPLUG_MAC, ID_NET_NAME_MAC), also on remove', () => {
    expect(eventFromUdevEnv(env({ ACTION: 'remove', ID_NET_NAME_MAC: 'enx0200000000A1' }), { root }).mac).to.equal('02:00:00:00:00:a1');
    expect(eventFromUdevEnv(env({ ACTION: 'add', HOTPLUG_MAC: '02:00:00:00:00:B2' }), { root }).mac).to.equal('02:00:00:00:00:b2');
  });

  it('leaves the MAC unset when sysfs has none (already renamed/gone)', () => {
    expect(eventFromUdevEnv(env({ ACTION: 'add', INTERFACE: 'eth9' }), { root }).mac).to.equal(undefined);
  });

  it('rejects a hostile INTERFACE before touching the filesystem, and unsupported actions', () => {
    expect(() => eventFromUdevEnv(env({ ACTION: 'add', INTERFACE: '../../../etc' }), { root })).to.throw(UserError, /interface name/);
    expect(() => eventFromUdevEnv(env({ ACTION: 'change' }), { root })).to.throw(UserError, /ACTION/);
    expect(() => eventFromUdevEnv(env({ ACTION: 'add', SEQNUM: '12x' }), { root })).to.throw(UserError, /SEQNUM/);
    expect(() => eventFromUdevEnv({ ACTION: 'add', INTERFACE: 'eth1' }, { root })).to.throw(UserError, /DEVPATH/);
  });
});

describe('queue', () => {
  let dir: string;
  before(() => setQuiet(true));
  after(() => setQuiet(false));
  beforeEach(() => {
    dir = join(mkdtempSync(join(tmpdir(), 'hp-q-')), 'queue');
  });
  afterEach(() => rmSync(dirname(dir), { recursive: true, force: true }));

  const ev = (id: string, time: number, seqnum?: number, o: Partial<HotplugEvent> = {}): HotplugEvent => ({
    id, action: 'add', ifname: 'eth1', devpath: '/devices/x/net/eth1', time, ...(seqnum !== undefined ? { seqnum } : {}), ...o,
  });

  it('names files so that lexical order is arrival order, on the boot clock as the udev program names them', () => {
    const now = Date.now();
    const boot = bootMs();
    const a1 = queueFileName(ev('a1', now, 7));
    expect(a1).to.match(/^\d{13}-00000000000000000007-a1\.json$/);
    // /proc/uptime's 10 ms, plus the time between the two reads
    expect(Math.abs(Number(a1.slice(0, 13)) - boot)).to.be.below(100);
    expect(queueFileName(ev('b', now - 1))).to.equal(`${String(Number(a1.slice(0, 13)) - 1).padStart(13, '0')}-00000000000000000000-b.json`);
    expect(queueFileName(ev('c', 5))).to.equal('0000000000000-00000000000000000000-c.json'); // before boot
  });

  it('lists events sorted by time then seqnum, sync and async writers alike', async () => {
    const t = Date.now() - 10_000;
    await enqueue(ev('c', t + 2000, 1), dir);
    await enqueue(ev('a', t + 1000, 9), dir);
    await enqueue(ev('b', t + 1000, 10), dir);
    await enqueue(ev('d', t + 999), dir);
    expect((await list(dir)).map((e) => e.id)).to.deep.equal(['d', 'a', 'b', 'c']);
    expect(await pendingCount(dir)).to.equal(4);
  });

  it('list with a `seen` map (the daemon gathering a storm) reads each file once and forgets files gone', async () => {
    await enqueue(ev('a', 1000, 1), dir);
    await enqueue(ev('b', 1001, 2), dir);
    const seen = new Map<string, HotplugEvent>();
    expect((await list(dir, seen)).map((e) => e.id)).to.deep.equal(['a', 'b']);
    expect([...seen.keys()]).to.deep.equal([queueFileName(ev('a', 1000, 1)), queueFileName(ev('b', 1001, 2))]);
    // Not read again: garbage written over a known name does not reach the second list...
    writeFileSync(join(dir, queueFileName(ev('a', 1000, 1))), 'not json\n');
    await enqueue(ev('c', 1002, 3), dir);
    expect((await list(dir, seen)).map((e) => e.id)).to.deep.equal(['a', 'b', 'c']);
    // ...while a list without the map reads it, and quarantines it.
    expect((await list(dir)).map((e) => e.id)).to.deep.equal(['b', 'c']);
    expect((await list(dir, seen)).map((e) => e.id)).to.deep.equal(['b', 'c']);
    expect(seen.size).to.equal(2);
  });

  it('writes 0600 files in a 0700 directory and leaves no temp files', async () => {
    await enqueue(ev('s', 1), dir);
    await enqueue(ev('t', 2), dir);
    expect(statSync(dir).mode & 0o777).to.equal(0o700);
    const files = readdirSync(dir);
    expect(files).to.have.length(2);
    for (const f of files) expect(statSync(join(dir, f)).mode & 0o777).to.equal(0o600);
    expect(JSON.parse(readFileSync(join(dir, files[0]!), 'utf8'))).to.deep.equal(ev('s', 1));
  });

  it('refuses to enqueue an invalid event', async () => {
    expect(await enqueue(ev('x', 1, undefined, { ifname: 'a/b' }), dir).catch((e: unknown) => e)).to.be.instanceOf(UserError);
    expect(() => readdirSync(dir)).to.throw(); // nothing created
  });

  it('quarantines unparsable or inconsistent files instead of failing', async () => {
    await enqueue(ev('ok', 1), dir);
    // Complete files (they end with the newline every writer ends them with), but bad ones.
    writeFileSync(join(dir, '0000000000002-00000000000000000000-junk.json'), '{not json\n');
    writeFileSync(join(dir, '0000000000003-00000000000000000000-evil.json'), JSON.stringify(ev('evil', 3, undefined, { ifname: '../x' })) + '\n');
    writeFileSync(join(dir, '0000000000004-00000000000000000000-other.json'), JSON.stringify(ev('mismatch', 4)) + '\n');
    writeFileSync(join(dir, 'random.json'), '{}\n');
    const got = await list(dir);
    expect(got.map((e) => e.id)).to.deep.equal(['ok']);
    expect(readdirSync(dir).filter((f) => f.endsWith('.bad'))).to.have.length(4);
    expect((await list(dir)).map((e) => e.id)).to.deep.equal(['ok']); // stays quarantined
  });

  it("a file still being written in place (the udev program's, no final newline yet) is skipped and not counted, then read once whole", async () => {
    await enqueue(ev('ok', 1), dir);
    const name = queueFileName(ev('w', 2, 5));
    const whole = JSON.stringify(ev('w', 2, 5));
    writeFileSync(join(dir, name), ''); // created, nothing written yet
    expect((await list(dir)).map((e) => e.id)).to.deep.equal(['ok']);
    expect(await pendingCount(dir)).to.equal(1);
    writeFileSync(join(dir, name), whole.slice(0, 20)); // part of it
    const seen = new Map<string, HotplugEvent>();
    expect((await list(dir, seen)).map((e) => e.id)).to.deep.equal(['ok']);
    expect(await pendingCount(dir)).to.equal(1);
    writeFileSync(join(dir, name), whole + '\n');
    expect((await list(dir, seen)).map((e) => e.id)).to.deep.equal(['ok', 'w']); // not remembered as absent
    expect(await pendingCount(dir)).to.equal(2);
    expect(readdirSync(dir).filter((f) => f.endsWith('.bad'))).to.deep.equal([]);
  });

  it('a file left without its final newline for longer than INCOMPLETE_GRACE_MS (its writer died) is counted, then quarantined', async () => {
    await enqueue(ev('ok', 1), dir);
    const name = queueFileName(ev('dead', 2));
    writeFileSync(join(dir, name), '{"id":"dead","act');
    const old = (Date.now() - INCOMPLETE_GRACE_MS - 1000) / 1000;
    utimesSync(join(dir, name), old, old);
    expect(await pendingCount(dir)).to.equal(2); // so that a drain runs and deals with it
    expect((await list(dir)).map((e) => e.id)).to.deep.equal(['ok']);
    expect(readdirSync(dir).filter((f) => f.endsWith('.bad'))).to.deep.equal([`${name}.bad`]);
    expect(await pendingCount(dir)).to.equal(1);
  });

  it('removes stale temp files from killed writers but not fresh ones, nor names no writer of ours makes', async () => {
    mkdirSync(dir, { recursive: true });
    // .NAME.<12 hex>.tmp (writeFileAtomic, used by enqueue) and .NAME.<pid>.tmp (the sh program)
    writeFileSync(join(dir, '.old.json.0123456789ab.tmp'), 'x');
    writeFileSync(join(dir, '.old2.json.4242.tmp'), 'x');
    writeFileSync(join(dir, '.new.json.bbbbbbbbbbbb.tmp'), 'x');
    writeFileSync(join(dir, '.stranger.tmp'), 'x');
    const old = new Date(Date.now() - 11 * 60_000);
    for (const n of ['.old.json.0123456789ab.tmp', '.old2.json.4242.tmp', '.stranger.tmp']) utimesSync(join(dir, n), old, old);
    expect(await list(dir)).to.deep.equal([]);
    expect(readdirSync(dir).sort()).to.deep.equal(['.new.json.bbbbbbbbbbbb.tmp', '.stranger.tmp']);
  });

  it('take() deletes nothing; ack() deletes only the taken ids, keeping later arrivals', async () => {
    await enqueue(ev('a', 1), dir);
    await enqueue(ev('b', 2), dir);
    const claim = await take(dir);
    expect(claim.ids).to.deep.equal(['a', 'b']);
    expect(await pendingCount(dir)).to.equal(2);
    await enqueue(ev('c', 3), dir); // arrives while the worker handles a, b
    expect(await ack(claim.ids, dir)).to.equal(2);
    expect((await list(dir)).map((e) => e.id)).to.deep.equal(['c']);
    expect(await ack(['a', 'nope'], dir)).to.equal(0);
  });

  it('an empty or missing queue lists as empty', async () => {
    expect(await list(dir)).to.deep.equal([]);
    expect(await take(dir)).to.deep.equal({ events: [], ids: [] });
    expect(await pendingCount(dir)).to.equal(0);
  });

  it('a worker killed with -9 between take and ack leaves the events for the next one', async function () {
    this.timeout(10_000);
    await enqueue(ev('a', 1), dir);
    await enqueue(ev('b', 2), dir);
    const queueJs = resolve(dirname(fileURLToPath(import.meta.url)), '../src/events/queue.js');
    const code = `const q = await import(${JSON.stringify(queueJs)}); const c = await q.take(${JSON.stringify(dir)});
      console.log(c.ids.join(',')); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((res) => child.stdout!.once('data', (d: Buffer) => res(d.toString().trim())));
    expect(line).to.equal('a,b');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect((await take(dir)).ids).to.deep.equal(['a', 'b']);
  });

  it("the hook's import chain (event.js, queue.js) loads only node builtins and project files", () => {
    const start = resolve(dirname(fileURLToPath(import.meta.url)), '../src/events/queue.js');
    const seen = new Set<string>();
    const external: string[] = [];
    const walk = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const src = readFileSync(file, 'utf8');
      for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const spec = (m[1] ?? m[2])!;
        if (spec.startsWith('.')) walk(resolve(dirname(file), spec));
        else if (!spec.startsWith('node:')) external.push(`${file}: ${spec}`);
      }
    };
    walk(start);
    expect(seen.size).to.be.greaterThan(3);
    expect(external).to.deep.equal([]);
  });
});
