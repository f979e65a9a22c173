/**
 * The daemon's listeners (unix socket, TCP, FIFO) under hostile input: a few hundred random and
 * malformed frames each (garbage, huge lines, half frames, slow and silent clients, bad tokens,
 * floods), then a well-formed request must still be answered; the same errors on every listener;
 * the FIFO's and the token file's ownership and mode checks.
 */
import { expect } from 'chai';
import { chmodSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync, symlinkSync, writeFileSync, writeSync, constants } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, execaSync } from 'execa';
import { UnixListener } from '../src/daemon/listeners/unix.js';
import { TcpListener } from '../src/daemon/listeners/tcp.js';
import { FifoListener } from '../src/daemon/listeners/fifo.js';
import type { Handlers } from '../src/daemon/listeners/session.js';
import { setQuiet } from '../src/util/log.js';

const TOKEN = 'tok-0123456789abcdef0123456789';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A seeded PRNG: the same frames every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

/** Hostile frames: each a string to write (some without a newline: half frames). */
function hostileFrames(n: number, token: string | null, maxLine: number): string[] {
  const r = rng(42);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const bytes = (len: number) => Buffer.from(Array.from({ length: len }, () => Math.floor(r() * 256))).toString('latin1');
  const tok = (o: Record<string, unknown>) => JSON.stringify(token === null ? o : { ...o, token: r() < 0.5 ? token : 'wrong-' + bytes(8) });
  const kinds: (() => string)[] = [
    () => bytes(1 + Math.floor(r() * 200)).replace(/\n/g, '') + '\n',
    () => pick(['[]', '"status"', '42', 'null', '{', '{"op":', '{}', '{"op":null}', '{"op":"__proto__"}', '{"op":"status","x":1}']) + '\n',
    () => tok({ op: pick(['reboot', 'apply', 'submit', 'wait', 'jobs', 'kick', 'status', 'ping']), [pick(['kind', 'id', 'limit', 'refresh', 'dryRun'])]: pick([1, 'x', true, null, [], {}, '../../etc', -1]) }) + '\n',
    () => tok({ op: 'status', pad: 'x'.repeat(maxLine + Math.floor(r() * 1000)) }) + '\n',
    () => '{"op":"status"'.slice(0, 1 + Math.floor(r() * 13)), // half frame, connection then closed
    () => tok({ op: 'wait', id: 'zzzzzz-000000' }) + '\n',
    () => JSON.stringify({ op: 'status', token: 12 }) + '\n',
    () => tok({ op: 'ping' }) + '\n',
  ];
  return Array.from({ length: n }, () => pick(kinds)());
}

function connect(kind: 'unix' | 'tcp', addr: string | number): Socket {
  return kind === 'unix' ? createConnection(addr as string) : createConnection({ host: '127.0.0.1', port: addr as number });
}

/** Write `data` on a fresh connection, collect reply lines until closed or `ms` passed. */
function exchange(kind: 'unix' | 'tcp', addr: string | number, data: string, ms = 1500, end = true): Promise<{ replies: Record<string, unknown>[]; closedByPeer: boolean }> {
  return new Promise((resolve) => {
    const c = connect(kind, addr);
    const replies: Record<string, unknown>[] = [];
    let buf = '';
    let closedByPeer = false;
    const t = setTimeout(() => {
      c.destroy();
      resolve({ replies, closedByPeer });
    }, ms);
    c.setEncoding('utf8');
    c.on('connect', () => (end ? c.end(data) : c.write(data)));
    c.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        replies.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    c.on('error', () => {});
    c.on('close', () => {
      closedByPeer = true;
      clearTimeout(t);
      resolve({ replies, closedByPeer });
    });
  });
}

function stubHandlers(counts: Record<string, number>): Handlers {
  return {
    handle: async (req, send) => {
      counts[req.op] = (counts[req.op] ?? 0) + 1;
      if (req.op === 'status') return { status: { running: true } };
      if (req.op === 'wait') {
        send({ type: 'job_progress', id: req.id, step: 'x' });
        throw new Error(`no job ${req.id}`);
      }
      return { echo: req.op };
    },
    subscribe: () => () => {},
  };
}

/** Throw the frames at a stream listener, a handful of connections at a time, with silent clients open meanwhile. */
async function barrage(kind: 'unix' | 'tcp', addr: string | number, frames: string[]): Promise<Record<string, unknown>[]> {
  const silent = Array.from({ length: 5 }, () => connect(kind, addr).on('error', () => {}));
  const all: Record<string, unknown>[] = [];
  try {
    for (let i = 0; i < frames.length; i += 20) {
      const batch = frames.slice(i, i + 20);
      // Some connections carry several frames in one write, some one each.
      const rs = await Promise.all([exchange(kind, addr, batch.slice(0, 10).join(''), 1500), ...batch.slice(10).map((f) => exchange(kind, addr, f, 1500))]);
      for (const r of rs) all.push(...r.replies);
    }
  } finally {
    for (const s of silent) s.destroy();
  }
  return all;
}

describe('daemon listeners under hostile input', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    setQuiet(true);
    dir = mkdtempSync(join(tmpdir(), 'hp-listen-'));
    chmodSync(dir, 0o700);
  });
  after(() => {
    setQuiet(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it('unix socket: 300 hostile frames, every error one JSON line with a reason; then a status request is answered', async () => {
    const counts: Record<string, number> = {};
    const l = new UnixListener(join(dir, 'u.sock'), stubHandlers(counts), { maxLine: 4096, partialLineMs: 300 });
    await l.listen();
    try {
      const replies = await barrage('unix', l.path, hostileFrames(300, null, 4096));
      const errors = replies.filter((r) => r.ok === false);
      expect(errors.length).to.be.greaterThan(50);
      for (const e of errors) expect(e.error, JSON.stringify(e)).to.be.a('string').and.not.equal('');
      expect(errors.map((e) => String(e.error)).some((e) => /not JSON/.test(e))).to.equal(true);
      expect(errors.map((e) => String(e.error)).some((e) => /longer than 4096 bytes; closing/.test(e))).to.equal(true);
      const ok = await exchange('unix', l.path, '{"op":"status"}\n');
      expect(ok.replies[0]).to.deep.include({ ok: true, op: 'status' });
      expect(l.stats.errors).to.be.greaterThan(0);
    } finally {
      await l.close();
    }
  });

  it('unix socket: a half line left unfinished closes that connection with an error, others are served meanwhile', async () => {
    const l = new UnixListener(join(dir, 'h.sock'), stubHandlers({}), { maxLine: 4096, partialLineMs: 300 });
    await l.listen();
    try {
      const slow = exchange('unix', l.path, '{"op":"sta', 5000, false);
      const ok = await exchange('unix', l.path, '{"op":"ping"}\n');
      expect(ok.replies[0]).to.deep.include({ ok: true, echo: 'ping' });
      const r = await slow;
      expect(r.closedByPeer).to.equal(true);
      expect(r.replies[0]!.error).to.match(/unfinished after 300 ms; closing/);
    } finally {
      await l.close();
    }
  });

  describe('TCP', () => {
    let l: TcpListener;
    const counts: Record<string, number> = {};
    const tokenFile = () => join(dir, 'tcp.token');
    const opts = (o: Partial<ConstructorParameters<typeof TcpListener>[0]> = {}) => ({
      address: '127.0.0.1',
      port: 0,
      tokenFile: tokenFile(),
      maxLine: 2048,
      ratePerSecond: 50,
      readOnlyWithoutToken: false,
      maxConnections: 64,
      limits: { partialLineMs: 300 },
      ...o,
    });
    before(async () => {
      writeFileSync(tokenFile(), TOKEN + '\n', { mode: 0o600 });
      l = new TcpListener(opts(), stubHandlers(counts));
      await l.listen();
    });
    after(() => l.close());

    it('300 hostile frames with good and bad tokens: refusals say why, nothing unauthorized reaches a handler, then a request with the token is answered', async () => {
      const replies = await barrage('tcp', l.port, hostileFrames(300, TOKEN, 2048));
      const errs = replies.filter((r) => r.ok === false).map((r) => String(r.error));
      expect(errs.some((e) => e === 'unauthorized: bad token')).to.equal(true);
      expect(errs.some((e) => /longer than 2048 bytes; closing/.test(e))).to.equal(true);
      expect(errs.some((e) => /token must be a string/.test(e))).to.equal(true);
      const ok = await exchange('tcp', l.port, JSON.stringify({ op: 'status', token: TOKEN }) + '\n');
      expect(ok.replies[0]).to.deep.include({ ok: true, op: 'status' });
      expect(l.stats.refused).to.be.greaterThan(0);
    });

    it('without a token: refused (and the connection closed after 5 refusals); the same unknown-op error as the socket', async () => {
      const before = { ...counts };
      const r = await exchange('tcp', l.port, '{"op":"status"}\n'.repeat(8) + '{"op":"reboot"}\n');
      expect(r.replies[0]).to.deep.equal({ ok: false, op: 'status', error: 'unauthorized: a token is required for status (every request needs one)' });
      expect(r.replies.length).to.equal(5);
      expect(r.closedByPeer).to.equal(true);
      expect(counts).to.deep.equal(before);
      const u = await exchange('tcp', l.port, '{"op":"reboot"}\n');
      expect(u.replies[0]!.error).to.match(/^unknown op "reboot" \(known: kick, apply/);
    });

    it('a flood on one connection hits the rate limit (or the in-flight cap when pipelined); the next connection is served', async () => {
      const line = JSON.stringify({ op: 'ping', token: TOKEN }) + '\n';
      // Pipelined all at once: more than 64 waiting closes the connection.
      const piped = await exchange('tcp', l.port, line.repeat(150), 3000);
      expect(String(piped.replies.at(-1)?.error)).to.equal('more than 64 requests waiting on this connection; closing');
      // Sent in rounds of 40 (each answered before the next): past the burst of 100 the rate limit answers.
      const replies: Record<string, unknown>[] = [];
      await new Promise<void>((resolve) => {
        const c = connect('tcp', l.port);
        let buf = '';
        let sent = 0;
        const round = () => {
          if (sent >= 200) return c.end();
          sent += 40;
          c.write(line.repeat(40));
        };
        c.setEncoding('utf8');
        c.on('connect', round);
        c.on('data', (d: string) => {
          buf += d;
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            replies.push(JSON.parse(buf.slice(0, i)));
            buf = buf.slice(i + 1);
          }
          if (replies.length === sent) round();
        });
        c.on('error', () => {});
        c.on('close', () => resolve());
      });
      expect(replies.filter((x) => x.ok === true).length).to.be.below(200);
      expect(replies.some((x) => /^rate limit: more than 50 requests per second/.test(String(x.error)))).to.equal(true);
      const ok = await exchange('tcp', l.port, line);
      expect(ok.replies[0]).to.deep.include({ ok: true, echo: 'ping' });
    });

    it('read-only ops without the token only when configured', async () => {
      const ro = new TcpListener(opts({ readOnlyWithoutToken: true }), stubHandlers({}));
      await ro.listen();
      try {
        const r = await exchange('tcp', ro.port, '{"op":"status"}\n{"op":"apply"}\n');
        expect(r.replies[0]).to.deep.include({ ok: true, op: 'status' });
        expect(r.replies[1]).to.deep.equal({ ok: false, op: 'apply', error: 'unauthorized: a token is required for apply' });
      } finally {
        await ro.close();
      }
    });

    it('refuses a token file that others can read, or a symlink', async () => {
      const loose = join(dir, 'loose.token');
      writeFileSync(loose, TOKEN, { mode: 0o644 });
      chmodSync(loose, 0o644);
      let err = '';
      await new TcpListener(opts({ tokenFile: loose }), stubHandlers({})).listen().catch((e) => (err = String(e)));
      expect(err).to.match(/must be owned by uid \d+ with mode 0600/);
      const link = join(dir, 'link.token');
      symlinkSync(tokenFile(), link);
      err = '';
      await new TcpListener(opts({ tokenFile: link }), stubHandlers({})).listen().catch((e) => (err = String(e)));
      expect(err).to.match(/is not a regular file/);
    });
  });

  describe('FIFO', () => {
    const fifoDir = () => join(dir, 'fifo');
    before(() => mkdirSync(fifoDir(), { mode: 0o700 }));

    /** Write to the FIFO as a client would (non-blocking: the listener holds it open). */
    const writeFifo = async (path: string, data: string | Buffer) => {
      const fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
      try {
        const b = Buffer.isBuffer(data) ? data : Buffer.from(data, 'latin1');
        for (let off = 0; off < b.length; ) {
          try {
            off += writeSync(fd, b, off, Math.min(4096, b.length - off));
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
            // The pipe is full: let the listener (same process) read.
            await new Promise((r) => setTimeout(r, 5));
          }
        }
      } finally {
        closeSync(fd);
      }
    };

    it('creates a 0600 FIFO; 300 hostile frames are refused with the same errors, and a kick afterwards is handled', async () => {
      const counts: Record<string, number> = {};
      const path = join(fifoDir(), 'd.fifo');
      const l = new FifoListener(path, stubHandlers(counts), { maxLine: 4096, partialLineMs: 300 });
      await l.listen();
      try {
        const st = (await execa('stat', ['-c', '%F %a %u', path])).stdout;
        expect(st).to.equal(`fifo 600 ${process.getuid!()}`);
        for (const f of hostileFrames(300, null, 4096)) await writeFifo(path, f.endsWith('\n') ? f : f + '\n');
        await writeFifo(path, '{"op":"kick"}\n');
        for (let i = 0; i < 200 && !counts.kick; i++) await new Promise((r) => setTimeout(r, 20));
        expect(counts.kick).to.be.at.least(1);
        expect(l.stats.errors).to.be.greaterThan(50);
        // A half line is dropped after its timeout and the next line is read normally.
        await writeFifo(path, '{"op":"pi');
        await new Promise((r) => setTimeout(r, 600));
        const kicks = counts.kick!;
        await writeFifo(path, '{"op":"kick"}\n');
        for (let i = 0; i < 200 && counts.kick === kicks; i++) await new Promise((r) => setTimeout(r, 20));
        expect(counts.kick).to.equal(kicks + 1);
      } finally {
        await l.close();
      }
    });

    it('refuses a path that is a regular file, a symlink, a FIFO with mode 0666, or in a world-writable directory (cf. CVE-2024-11584)', async () => {
      const cases: [string, () => void, RegExp][] = [
        ['file', () => writeFileSync(join(fifoDir(), 'file'), ''), /is a regular file/],
        ['link', () => symlinkSync('/etc/passwd', join(fifoDir(), 'link')), /is a symlink/],
        ['open', () => execaSync('mkfifo', ['-m', '0666', join(fifoDir(), 'open')]), /FIFO with mode 0666/],
      ];
      for (const [name, make, re] of cases) {
        make();
        let err = '';
        await new FifoListener(join(fifoDir(), name), stubHandlers({})).listen().catch((e) => (err = String(e)));
        expect(err, name).to.match(re);
      }
      const wide = join(dir, 'wide');
      mkdirSync(wide);
      chmodSync(wide, 0o1777);
      let err = '';
      await new FifoListener(join(wide, 'd.fifo'), stubHandlers({})).listen().catch((e) => (err = String(e)));
      expect(err).to.match(/writable only by it/);
    });

    it('refuses a FIFO owned by another user', async function () {
      if (!isRoot) throw new Error('needs root (to chown)');
      const p = join(fifoDir(), 'theirs');
      await execa('mkfifo', ['-m', '0600', p]);
      await execa('chown', ['65534', p]);
      let err = '';
      await new FifoListener(p, stubHandlers({})).listen().catch((e) => (err = String(e)));
      expect(err).to.match(/a FIFO owned by uid 65534/);
    });
  });
});
