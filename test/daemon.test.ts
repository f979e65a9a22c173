/**
 * `hotplug daemon` pieces without a lab: the socket protocol and server (0600, malformed input,
 * 100 concurrent requests, subscribe), the link monitor's parsing and folding, the poller's
 * fingerprint and delays, the event policy, the bridge manager (fake bridge), the supervisor, and
 * the real daemon process against an empty root (HOTPLUG_ROOT): status, kick, SIGHUP, SIGTERM.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { EventEmitter } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { parseRequest, MAX_LINE } from '../src/daemon/protocol.js';
import { SocketServer } from '../src/daemon/server.js';
import { request } from '../src/daemon/kick.js';
import { parseLinkLine, LinkMonitor, linkUp } from '../src/daemon/monitor.js';
import { fingerprint, describeChange, pollDelay, jittered } from '../src/daemon/fingerprint.js';
import { dispatch, runPolicyCommand, HANDLERS, type PolicyJob } from '../src/pipeline/policies.js';
import { isBridgeFailure } from '../bridge/manager.js';
import { Bridges as BridgeManager } from '../src/core/bridges.js';
import { supervise } from '../src/daemon/supervise.js';
import { BridgeError, type Bridge, type NicMeta } from '../bridge/index.js';
import { defaultConfig, validateConfig } from '../src/config.js';
import type { HotplugEvent } from '../src/events/event.js';
import { setQuiet } from '../src/util/log.js';
import { CLI } from './helpers/run.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Raw lines to a unix socket; collects reply lines until `n` arrived or the socket closed. */
function talk(path: string, lines: string[], n = lines.length, timeoutMs = 5000): Promise<{ replies: Record<string, unknown>[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    const replies: Record<string, unknown>[] = [];
    let buf = '';
    let closed = false;
    const t = setTimeout(() => {
      c.destroy();
      resolve({ replies, closed });
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(lines.join('\n') + '\n'));
    c.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        replies.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
      if (replies.length >= n) {
        clearTimeout(t);
        c.destroy();
        resolve({ replies, closed });
      }
    });
    c.on('close', () => {
      closed = true;
      clearTimeout(t);
      resolve({ replies, closed });
    });
    c.on('error', reject);
  });
}

describe('daemon: socket protocol', () => {
  it('parses the known ops with defaults and refuses everything else with a reason', () => {
    expect(parseRequest('{"op":"status"}')).to.deep.equal({ ok: true, req: { op: 'status' } });
    expect(parseRequest('{"op":"apply"}')).to.deep.equal({ ok: true, req: { op: 'apply', refresh: true, dryRun: false } });
    expect(parseRequest('{"op":"apply","refresh":false,"dryRun":true}')).to.deep.equal({ ok: true, req: { op: 'apply', refresh: false, dryRun: true } });
    expect(parseRequest('{"op":"kick","id":"abc123"}')).to.deep.equal({ ok: true, req: { op: 'kick', id: 'abc123' } });
    const bad: [string, RegExp][] = [
      ['not json', /not JSON/],
      ['[1,2]', /not a JSON object/],
      ['"status"', /not a JSON object/],
      ['{"op":"reboot"}', /unknown op "reboot"/],
      ['{}', /unknown op/],
      ['{"op":"status","x":1}', /unknown key "x"/],
      ['{"op":"apply","refresh":"yes"}', /refresh must be true or false/],
      ['{"op":"kick","id":"../../etc"}', /id must be an event id/],
      ['x'.repeat(MAX_LINE + 1), /longer than/],
    ];
    for (const [line, re] of bad) {
      const p = parseRequest(line);
      expect(p.ok, line.slice(0, 40)).to.equal(false);
      if (!p.ok) expect(p.error).to.match(re);
    }
  });
});

describe('daemon: socket server', function () {
  let dir: string;
  let server: SocketServer;
  let sock: string;
  const subs = new Set<(m: Record<string, unknown>) => void>();
  before(async () => {
    setQuiet(true);
    dir = mkdtempSync(join(tmpdir(), 'hp-dmn-sock-'));
    chmodSync(dir, 0o755); // only the socket's own mode may keep others out
    sock = join(dir, 'daemon.sock');
    server = new SocketServer(sock, {
      handle: async (req) => {
        if (req.op === 'status') {
          await new Promise((r) => setTimeout(r, Math.random() * 20));
          return { status: { running: true } };
        }
        if (req.op === 'refresh') throw new Error('refresh exploded');
        return { echo: req.op };
      },
      subscribe: (send) => {
        subs.add(send);
        return () => subs.delete(send);
      },
    });
    await server.listen();
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
    setQuiet(false);
  });

  it('creates the socket with mode 0600', () => {
    const st = statSync(sock);
    expect(st.isSocket()).to.equal(true);
    expect(st.mode & 0o777).to.equal(0o600);
  });

  it('answers malformed requests with {ok:false,error} on the same connection and keeps serving', async () => {
    const r = await talk(sock, ['garbage', '{"op":"nope"}', '[]', '{"op":"refresh"}', '{"op":"status"}']);
    expect(r.replies.map((x) => x.ok)).to.deep.equal([false, false, false, false, true]);
    expect(r.replies[0]!.error).to.match(/not JSON/);
    expect(r.replies[3]!.error).to.equal('refresh exploded');
    expect(r.replies[4]).to.deep.include({ ok: true, op: 'status' });
    const again = await request(sock, { op: 'ping' });
    expect(again).to.deep.include({ ok: true, echo: 'ping' });
  });

  it('an over-long line gets an error and the connection is closed; the server lives on', async () => {
    const r = await talk(sock, ['{"op":"status","pad":"' + 'x'.repeat(MAX_LINE + 10)], 1);
    expect(r.replies[0]!.ok).to.equal(false);
    expect(r.replies[0]!.error).to.match(/longer than/);
    expect((await request(sock, { op: 'status' }))?.ok).to.equal(true);
  });

  it('answers 100 concurrent status requests, all of them', async () => {
    const rs = await Promise.all(Array.from({ length: 100 }, () => request(sock, { op: 'status' }, 10_000)));
    expect(rs.filter((r) => r?.ok === true && (r.status as { running: boolean }).running)).to.have.length(100);
  });

  it('subscribe streams what is published until the client leaves', async () => {
    const got: Record<string, unknown>[] = [];
    const c = createConnection(sock);
    c.setEncoding('utf8');
    let buf = '';
    c.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        got.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    await new Promise<void>((r) => c.on('connect', () => r()));
    c.write('{"op":"subscribe"}\n');
    for (let i = 0; i < 50 && subs.size === 0; i++) await new Promise((r) => setTimeout(r, 10));
    for (const s of subs) s({ type: 'event', iface: 'eth9' });
    for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got[0]).to.deep.equal({ ok: true, op: 'subscribe' });
    expect(got[1]).to.deep.equal({ type: 'event', iface: 'eth9' });
    c.destroy();
    for (let i = 0; i < 50 && subs.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(subs.size).to.equal(0);
  });

  it('a non-root user cannot connect (EACCES)', async function () {
    if (!isRoot || !existsSync('/usr/bin/setpriv')) this.skip();
    const js = `const c=require('net').createConnection(process.argv[1]);c.on('connect',()=>{console.log('connected');process.exit(0)});c.on('error',e=>{console.log(e.code);process.exit(0)})`;
    const r = await execa('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', js, sock], { reject: false });
    expect(r.stdout.trim()).to.equal('EACCES');
  });

  it('refuses to start next to a live server, replaces a stale socket, never a regular file', async () => {
    const other = new SocketServer(sock, { handle: () => ({}), subscribe: () => () => {} });
    let err: unknown;
    await other.listen().catch((e) => (err = e));
    expect(String(err)).to.match(/another daemon already listens/);
    const file = join(dir, 'plain');
    writeFileSync(file, 'x');
    err = undefined;
    await new SocketServer(file, { handle: () => ({}), subscribe: () => () => {} }).listen().catch((e) => (err = e));
    expect(String(err)).to.match(/not a socket/);
    expect(readFileSync(file, 'utf8')).to.equal('x');
  });

  it('the client says null (no daemon) when nobody listens', async () => {
    expect(await request(join(dir, 'missing.sock'), { op: 'status' }, 500)).to.equal(null);
  });
});

describe('daemon: link monitor', () => {
  const L = (s: string) => parseLinkLine(s)!;
  it('parses ip -o link / monitor lines (names with @peer, flags, MAC, Deleted)', () => {
    const a = L('3: vA@vB: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether 4a:b0:64:39:a2:16 brd ff:ff:ff:ff:ff:ff');
    expect(a).to.deep.equal({ deleted: false, index: 3, ifname: 'vA', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mac: '4a:b0:64:39:a2:16' });
    expect(linkUp(a)).to.equal(true);
    const d = L('Deleted 2: vB@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 02:54:2E:f2:77:f5 brd ff:ff:ff:ff:ff:ff');
    expect(d.deleted).to.equal(true);
    expect(d.mac).to.equal('02:54:2e:f2:77:f5');
    expect(linkUp(L('4: eth1: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 state DOWN'))).to.equal(false);
    expect(parseLinkLine('nsid 3 current 3')).to.equal(null);
    expect(parseLinkLine('')).to.equal(null);
  });

  it('folds lines into add, remove (with the last known MAC and name), rename and up/down callbacks', () => {
    const seen: string[] = [];
    const m = new LinkMonitor({
      onAdd: (l) => seen.push(`add ${l.ifname} ${l.mac}`),
      onRemove: (l) => seen.push(`remove ${l.ifname} ${l.mac}`),
      onRename: (a, b) => seen.push(`rename ${a.ifname}>${b.ifname}`),
      onState: (l, up) => seen.push(`${up ? 'up' : 'down'} ${l.ifname}`),
    });
    m.feed('5: eth5: <BROADCAST> mtu 1500 \\ link/ether 02:00:00:00:00:05 brd ff'); // before the listing: buffered
    m.load('1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 \\ link/ether 02:00:00:00:00:01 brd ff', false);
    m.feed('2: eth0: <BROADCAST,MULTICAST,UP> mtu 1500 \\ link/ether 02:00:00:00:00:01 brd ff');
    m.feed('2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 \\ link/ether 02:00:00:00:00:01 brd ff');
    m.feed('5: ens5: <BROADCAST> mtu 1500 \\ link/ether 02:00:00:00:00:05 brd ff');
    m.feed('Deleted 5: ens5: <BROADCAST> mtu 1500');
    expect(seen).to.deep.equal(['add eth5 02:00:00:00:00:05', 'down eth0', 'up eth0', 'rename eth5>ens5', 'remove ens5 02:00:00:00:00:05']);
    // A new listing after a monitor restart reports what changed meanwhile.
    seen.length = 0;
    m.load('1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n7: eth7: <BROADCAST> mtu 1500 \\ link/ether 02:00:00:00:00:07 brd ff', true);
    expect(seen).to.deep.equal(['remove eth0 02:00:00:00:00:01', 'add eth7 02:00:00:00:00:07']);
  });
});

describe('daemon: poller helpers', () => {
  const nic = (mac: string, ips: string[]): NicMeta => ({
    mac, device_number: 1, network_card: 0, interface_id: 'eni-1', ipv4s: ips, ipv6s: [], subnet_ipv4_cidr: '10.0.2.0/24', subnet_ipv6_cidrs: [], ipv4_prefixes: [], ipv6_prefixes: [],
  });
  it('fingerprint: same metadata in any key order → same hash; an added secondary IP → different', () => {
    const a = { primary_mac: 'aa', nics: { m1: nic('m1', ['10.0.2.10']) } };
    const b = { nics: { m1: { ...nic('m1', ['10.0.2.10']) } }, primary_mac: 'aa' };
    expect(fingerprint(a)).to.equal(fingerprint(b));
    const c = { primary_mac: 'aa', nics: { m1: nic('m1', ['10.0.2.10', '10.0.2.20']) } };
    expect(fingerprint(c)).to.not.equal(fingerprint(a));
    expect(describeChange(a, c)).to.equal('+ipv4 10.0.2.20 on m1');
    expect(describeChange(c, a)).to.equal('-ipv4 10.0.2.20 on m1');
    expect(describeChange(a, { nics: {} })).to.equal('-nic m1');
  });
  it('poll delay: interval ±20%; after errors the shared backoff (full jitter), never sooner than the interval, capped at 5 minutes', () => {
    expect(jittered(10_000, 0.2, () => 0)).to.equal(8000);
    expect(jittered(10_000, 0.2, () => 1)).to.equal(12_000);
    for (let i = 0; i < 200; i++) {
      const d = pollDelay(10_000, 0);
      expect(d).to.be.within(8000, 12_000);
    }
    expect(pollDelay(10_000, 2, 300_000, () => 0.5)).to.equal(20_000);
    expect(pollDelay(10_000, 2, 300_000, () => 0)).to.equal(10_000);
    expect(pollDelay(10_000, 30, 300_000, () => 1)).to.equal(300_000);
  });
});

describe('daemon: event policy', () => {
  it('one map from policy to handler, the same for every kind of event', async () => {
    expect(Object.keys(HANDLERS).sort()).to.deep.equal(['apply', 'ignore', 'reconcile', 'run']);
    const calls: string[] = [];
    const job = (kind: PolicyJob['kind']): PolicyJob => ({
      kind,
      vars: {},
      apply: async () => (calls.push(`apply ${kind}`), { ok: true }),
      reconcile: async () => (calls.push(`reconcile ${kind}`), { ok: true, routingChanges: 2 }),
    });
    expect(await dispatch('apply', job('add'))).to.deep.equal({ handler: 'apply', ok: true });
    expect(await dispatch('reconcile', job('link_down'))).to.deep.equal({ handler: 'reconcile', ok: true, routingChanges: 2 });
    expect(await dispatch('ignore', job('metadata_change'))).to.deep.equal({ handler: 'ignore', ok: true, reason: 'events.metadata_change policy is ignore' });
    expect(await dispatch({ run: ['/bin/false'] }, job('remove'))).to.include({ handler: 'run', ok: false });
    expect(calls).to.deep.equal(['apply add', 'reconcile link_down']);
    expect(validateConfig({ events: { add: 'apply', remove: { run: ['/bin/true'] } } }).events.remove).to.deep.equal({ run: ['/bin/true'] });
    expect(defaultConfig.events.add).to.equal('apply');
  });
  it('runs {run: argv} without a shell, with the event in a clean environment; failures are reported, not thrown', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hp-dmn-pol-'));
    try {
      const out = join(dir, 'env');
      const script = join(dir, 'hook.sh');
      writeFileSync(script, `#!/bin/sh\nenv > ${out}\n`, { mode: 0o755 });
      const ok = await runPolicyCommand([script], { HOTPLUG_EVENT: 'add', HOTPLUG_IFACE: 'eth1; rm -rf /' });
      expect(ok.ok).to.equal(true);
      const env = readFileSync(out, 'utf8');
      expect(env).to.match(/^HOTPLUG_IFACE=eth1; rm -rf \/$/m);
      expect(env).to.not.match(/^HOME=/m);
      const bad = await runPolicyCommand(['/bin/false'], {});
      expect(bad).to.deep.equal({ ok: false, detail: '/bin/false exited 1' });
      const missing = await runPolicyCommand(['/nonexistent/x'], {});
      expect(missing.ok).to.equal(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('daemon: bridge manager (fake bridge)', () => {
  let dir: string;
  before(() => {
    setQuiet(true);
    dir = mkdtempSync(join(tmpdir(), 'hp-dmn-br-'));
    writeFileSync(join(dir, 'obj.pkl'), 'x');
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    setQuiet(false);
  });

  function fake() {
    let n = 0;
    const procs: (EventEmitter & { pid: number })[] = [];
    const opens: number[] = [];
    const factory = async (): Promise<Bridge> => {
      const id = ++n;
      const proc = Object.assign(new EventEmitter(), { pid: 100_000 + id });
      procs.push(proc);
      return {
        pythonPid: proc.pid,
        open: async () => {
          opens.push(id);
          return { obj_pkl: 'x', summary: { macs: [`m${id}`] } as never };
        },
        summary: async () => ({ macs: [] }) as never,
        close: async () => {},
      } as unknown as Bridge;
    };
    return { factory, procs, opens, count: () => n };
  }

  it('starts once (warm), re-opens when obj.pkl changes under it, restarts after the child died', async () => {
    const f = fake();
    const m = new BridgeManager({ factory: f.factory, objPkl: join(dir, 'obj.pkl'), procOf: async (b) => f.procs.find((p) => p.pid === b.pythonPid) });
    const deaths: string[] = [];
    m.onDeath = (w) => deaths.push(w);
    const b1 = await m.get();
    expect(await m.get()).to.equal(b1);
    expect(f.count()).to.equal(1);
    // Another process rewrote obj.pkl: the same bridge re-opens it.
    const t = new Date(Date.now() + 5000);
    utimesSync(join(dir, 'obj.pkl'), t, t);
    expect(await m.get()).to.equal(b1);
    expect(f.opens).to.deep.equal([1, 1]);
    expect(m.reopens).to.equal(1);
    // Our own writes do not look foreign.
    const t2 = new Date(Date.now() + 10_000);
    utimesSync(join(dir, 'obj.pkl'), t2, t2);
    m.noteOwnWrites();
    await m.get();
    expect(m.reopens).to.equal(1);
    // The Python child dies: reported once, the next get() starts a new one.
    f.procs[0]!.emit('exit', null, 'SIGKILL');
    expect(deaths).to.have.length(1);
    expect(deaths[0]).to.match(/exited \(SIGKILL\)/);
    expect(m.health().alive).to.equal(false);
    const b2 = await m.get();
    expect(b2).to.not.equal(b1);
    expect(m.restarts).to.equal(1);
    expect(m.health().pid).to.equal(100_002);
  });

  it('classifies dead and stuck bridges as restartable, other bridge errors not', () => {
    expect(isBridgeFailure(new BridgeError('x', 'BridgeDead'))).to.equal(true);
    expect(isBridgeFailure(new BridgeError('x', 'BridgeTimeout'))).to.equal(true);
    expect(isBridgeFailure(new BridgeError('x', 'RefreshFailed'))).to.equal(false);
    expect(isBridgeFailure(new Error('x'))).to.equal(false);
  });
});

describe('daemon: supervisor', function () {
  this.timeout(20_000);
  it('restarts the daemon when it is killed, stops when it exits cleanly', async () => {
    setQuiet(true);
    const dir = mkdtempSync(join(tmpdir(), 'hp-dmn-sup-'));
    try {
      const count = join(dir, 'n');
      // 1st and 2nd run: SIGKILL themselves; 3rd: exit 0.
      const js = `const fs=require('fs');const f=process.argv[1];const n=Number(fs.existsSync(f)?fs.readFileSync(f,'utf8'):0)+1;fs.writeFileSync(f,String(n));if(n<3)process.kill(process.pid,'SIGKILL');`;
      const rc = await supervise([process.execPath, '-e', js, count], { signals: false, restartMs: 50 });
      expect(rc).to.equal(0);
      expect(readFileSync(count, 'utf8')).to.equal('3');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      setQuiet(false);
    }
  });
});

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
    if (!isRoot) this.skip();
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
    writeFileSync(join(q, `${String(ev.time).padStart(13, '0')}-${'0'.repeat(20)}-${ev.id}.json`), JSON.stringify(ev), { mode: 0o600 });
    const r = await request(sock, { op: 'kick' }, 5000);
    expect(r).to.include({ ok: true, queued: 1 });
    await waitOut(/batch failed; events stay queued/);
    expect(readdirSync(q).filter((n) => n.endsWith('.json'))).to.have.length(1);
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



describe('routing watch: `ip -o monitor address route rule` lines (real iproute2 output)', () => {
  const lines = {
    addrAdd: '3: va    inet 10.9.0.2/24 scope global va\\       valid_lft forever preferred_lft forever',
    addrDel: 'Deleted 3: va    inet 10.9.0.2/24 scope global va\\       valid_lft forever preferred_lft forever',
    ll6: '3: va    inet6 fe80::a481:19ff:fe97:93a4/64 scope link \\       valid_lft forever preferred_lft forever',
    ruleDel: 'Deleted 10002:\tfrom 10.9.0.2 lookup 10002 proto 199',
    routeDel: 'Deleted default via 10.9.0.1 dev va table 10002 proto 199 ',
    othersRouteDel: 'Deleted 10.9.0.0/24 dev va proto kernel scope link src 10.9.0.2 ',
    othersRuleDel: 'Deleted 500:\tfrom 10.9.0.2 lookup 100',
    ourRouteAdd: 'default via 10.9.0.1 dev va table 10002 proto 199 ',
    link: '3: va@vb: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP \\    link/ether 02:00:00:aa:bb:cc brd ff:ff:ff:ff:ff:ff',
  };
  it('an address coming or going on an interface (not IPv6 link-local) is a change', async () => {
    const { parseRoutingLine } = await import('../src/daemon/monitor.js');
    expect(parseRoutingLine(lines.addrAdd, 199)).to.deep.equal({ kind: 'address', ifname: 'va', deleted: false });
    expect(parseRoutingLine(lines.addrDel, 199)).to.deep.equal({ kind: 'address', ifname: 'va', deleted: true });
    expect(parseRoutingLine(lines.ll6, 199)).to.equal(null);
  });
  it('a rule or route of ours deleted is a change; others\' deletions, additions and links are not', async () => {
    const { parseRoutingLine, parseLinkLine } = await import('../src/daemon/monitor.js');
    expect(parseRoutingLine(lines.ruleDel, 199)).to.deep.equal({ kind: 'ours-deleted', what: 'rule' });
    expect(parseRoutingLine(lines.routeDel, 199)).to.deep.equal({ kind: 'ours-deleted', what: 'route' });
    expect(parseRoutingLine(lines.othersRouteDel, 199)).to.equal(null);
    expect(parseRoutingLine(lines.othersRuleDel, 199)).to.equal(null);
    expect(parseRoutingLine(lines.ourRouteAdd, 199)).to.equal(null);
    expect(parseRoutingLine(lines.routeDel, 42), 'another protocol number').to.equal(null);
    // Address and rule lines are never mistaken for links, and link lines never for routing changes.
    for (const l of [lines.addrAdd, lines.addrDel, lines.ruleDel, lines.routeDel]) expect(parseLinkLine(l), l).to.equal(null);
    expect(parseLinkLine(lines.link)).to.include({ ifname: 'va', index: 3 });
  });
});
