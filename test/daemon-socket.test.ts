/**
 * `hotplug daemon`'s socket: the request protocol, and the server (0600, malformed input, 100
 * concurrent requests, subscribe).
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRequest, MAX_LINE } from '../src/daemon/protocol.js';
import { UnixListener as SocketServer } from '../src/daemon/listeners/unix.js';
import { request } from '../src/daemon/kick.js';
import { setQuiet } from '../src/util/log.js';

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
    if (!isRoot) throw new Error('needs root (to drop to another user)');
    expect(existsSync('/usr/bin/setpriv'), '/usr/bin/setpriv (util-linux)').to.equal(true);
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
