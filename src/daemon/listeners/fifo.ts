/**
 * The FIFO listener (named pipe; off by default): for scripts and hooks that cannot speak to a
 * socket, one JSON request per line (protocol.ts). There is no reply channel: answers and errors go
 * to the daemon's log, with the same texts the sockets send. Writers of at most PIPE_BUF (4096)
 * bytes per line are never interleaved by the kernel.
 *
 * Unlike cloud-init's hotplug FIFO (CVE-2024-11584: world-writable), it refuses to start unless the
 * path is a FIFO owned by us with mode 0600 in a directory only we can write, and it opens the
 * path without following links, checking that what it opened is what it checked.
 */
import { closeSync, constants, fstatSync, openSync, type Stats } from 'node:fs';
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { Socket } from 'node:net';
import { dirname } from 'node:path';
import { execa } from 'execa';
import { MAX_LINE } from '../protocol.js';
import { UserError, oneLine } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { DEFAULT_LIMITS, handleLine, newStats, Rate, type Handlers, type Limits, type Listener, type Reply } from './session.js';

/** Lines read but not yet handled before more are discarded. */
const FIFO_BACKLOG = 1024;

const euid = () => (typeof process.geteuid === 'function' ? process.geteuid() : 0);

function what(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (!st.isFIFO()) return 'not a FIFO';
  if (st.uid !== euid()) return `a FIFO owned by uid ${st.uid}`;
  if ((st.mode & 0o7777) !== 0o600) return `a FIFO with mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}`;
  return '';
}

/** Why `path` may not be our FIFO ('' when it may), and its stat. */
export async function checkFifo(path: string): Promise<{ why: string; st: Stats | null }> {
  const dir = await lstat(dirname(path));
  if (!dir.isDirectory() || dir.uid !== euid() || (dir.mode & 0o022) !== 0) {
    return { why: `its directory ${dirname(path)} is not a directory owned by uid ${euid()} and writable only by it`, st: null };
  }
  try {
    const st = await lstat(path);
    const w = what(st);
    return { why: w ? `it exists and is ${w} (want a FIFO owned by uid ${euid()}, mode 0600)` : '', st };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { why: '', st: null };
    throw e;
  }
}

export class FifoListener implements Listener {
  readonly kind = 'fifo';
  readonly stats = newStats();
  private sock: Socket | undefined;
  private buf = '';
  private discarding = false;
  private inFlight = 0;
  private chain: Promise<void> = Promise.resolve();
  private partialTimer: NodeJS.Timeout | undefined;
  private readonly rate: Rate;
  private readonly limits: Required<Pick<Limits, 'maxLine'>> & Limits & typeof DEFAULT_LIMITS;

  constructor(
    readonly path: string,
    private readonly handlers: Handlers,
    limits: Limits = { maxLine: MAX_LINE },
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.rate = new Rate(limits.ratePerSecond ?? 0);
  }

  get address(): string {
    return this.path;
  }

  async listen(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o755 });
    let { why, st } = await checkFifo(this.path);
    if (why) throw new UserError(`refusing to use ${this.path} as the daemon's FIFO: ${why}; remove it or choose another path`);
    if (!st) {
      // mkfifo(1) with the mode given creates it 0600 from the start (no window for others to open it).
      const r = await execa('mkfifo', ['-m', '0600', '--', this.path], { reject: false });
      if (r.exitCode !== 0) throw new UserError(`cannot create the FIFO ${this.path}: ${r.stderr.trim() || `mkfifo exited ${r.exitCode}`}`);
      ({ why, st } = await checkFifo(this.path));
      if (why || !st) throw new UserError(`refusing to use ${this.path} as the daemon's FIFO: ${why || 'it vanished'}`);
    }
    // Read-write: the daemon holds a writer itself, so the pipe never reports end-of-file between
    // clients; non-blocking so reads go through the event loop, not a blocked thread.
    // (A raw descriptor, owned by the socket from here on: it closes it.)
    const fd = openSync(this.path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    const fst = fstatSync(fd);
    if (fst.dev !== st.dev || fst.ino !== st.ino || !fst.isFIFO()) {
      closeSync(fd);
      throw new UserError(`refusing to use ${this.path} as the daemon's FIFO: it was replaced while being opened`);
    }
    const sock = new Socket({ fd, readable: true, writable: false });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.feed(d));
    sock.on('error', (e) => log('warn', 'FIFO read error', { path: this.path, error: oneLine(e) }));
    this.sock = sock;
    this.stats.connections = 1;
  }

  async close(): Promise<void> {
    clearTimeout(this.partialTimer);
    if (!this.sock) return; // never listened: the path is not ours to remove
    this.sock.destroy();
    this.sock = undefined;
    this.stats.connections = 0;
    await unlink(this.path).catch(() => {});
  }

  private feed(d: string): void {
    this.buf += d;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (this.discarding) {
        // The rest of an over-long line.
        this.discarding = false;
        continue;
      }
      if (line) this.one(line);
    }
    if (this.buf.length > this.limits.maxLine) {
      this.refuse({ ok: false, error: `request longer than ${this.limits.maxLine} bytes; discarded` });
      this.buf = '';
      this.discarding = true;
    }
    clearTimeout(this.partialTimer);
    if (this.buf.length > 0) {
      this.partialTimer = setTimeout(() => {
        this.refuse({ ok: false, error: `request line unfinished after ${this.limits.partialLineMs} ms; discarded` });
        this.buf = '';
      }, this.limits.partialLineMs);
      this.partialTimer.unref();
    }
  }

  private refuse(msg: Reply): void {
    this.stats.errors++;
    this.reply(msg);
  }

  private reply(msg: Reply): void {
    if (msg.ok === false) log('warn', 'FIFO request refused', { path: this.path, op: typeof msg.op === 'string' ? msg.op : undefined, error: String(msg.error) });
    else if (msg.ok === true) log('info', 'FIFO request done', { op: String(msg.op), job: typeof msg.job === 'object' && msg.job ? String((msg.job as { id?: unknown }).id) : undefined });
  }

  private one(line: string): void {
    if (this.inFlight >= FIFO_BACKLOG) {
      this.refuse({ ok: false, error: `more than ${FIFO_BACKLOG} FIFO requests waiting; discarded` });
      return;
    }
    this.inFlight++;
    // In order, one at a time; nothing here waits long: apply and refresh become submitted jobs
    // (nobody could read their answer), wait and subscribe are refused (no reply channel).
    this.chain = this.chain.then(() =>
      handleLine(line, {
        handlers: {
          handle: (req, send) => {
            if (req.op === 'apply') return this.handlers.handle({ op: 'submit', kind: 'apply', refresh: req.refresh, dryRun: req.dryRun }, send);
            if (req.op === 'refresh') return this.handlers.handle({ op: 'submit', kind: 'refresh' }, send);
            if (req.op === 'wait') throw new Error('wait needs a reply channel: use the unix socket');
            return this.handlers.handle(req, send);
          },
          subscribe: () => {
            throw new Error('subscribe needs a reply channel: use the unix socket');
          },
        },
        limits: this.limits,
        stats: this.stats,
        rate: this.rate,
        send: (m) => this.reply(m),
        onSubscribe: () => {},
        refused: () => false,
      }).then(
        () => void this.inFlight--,
        () => void this.inFlight--,
      ),
    );
  }
}
