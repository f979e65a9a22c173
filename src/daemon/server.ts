/**
 * The daemon's unix socket: JSON lines (see protocol.ts), mode 0600 (root only: the kernel checks
 * the socket file's write permission on connect), one handler call per request, answered in
 * order per connection. A handler that throws becomes {ok:false,error}; a bad request never
 * takes the server down.
 */
import { createServer, createConnection, type Server, type Socket } from 'node:net';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MAX_LINE, parseRequest, type Request } from './protocol.js';
import { oneLine, UserError } from '../util/errors.js';
import { log } from '../util/log.js';

export type Reply = Record<string, unknown>;

export interface Handlers {
  /** Answer for every op but subscribe. */
  handle(req: Exclude<Request, { op: 'subscribe' }>): Promise<Reply> | Reply;
  /** Start streaming to `send`; returns the unsubscribe function. */
  subscribe(send: (msg: Reply) => void): () => void;
}

/** True when something answers on the socket (a live daemon). */
function answers(path: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    const t = setTimeout(() => {
      c.destroy();
      resolve(true); // connected but slow: someone is there
    }, timeoutMs);
    c.on('connect', () => {
      clearTimeout(t);
      c.destroy();
      resolve(true);
    });
    c.on('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export class SocketServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  requests = 0;
  errors = 0;

  constructor(
    readonly path: string,
    private readonly handlers: Handlers,
  ) {}

  get connections(): number {
    return this.sockets.size;
  }

  async listen(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o755 });
    try {
      const st = await lstat(this.path);
      if (!st.isSocket()) throw new UserError(`refusing to replace ${this.path}: it exists and is not a socket`);
      if (await answers(this.path)) throw new UserError(`another daemon already listens on ${this.path}`);
      await unlink(this.path); // stale, from a daemon that died
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const server = createServer({ allowHalfOpen: false }, (s) => this.serve(s));
    server.maxConnections = 1024;
    // Created 0600 from the start (no window in which others could connect), then made sure.
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ path: this.path, backlog: 511 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(old);
    }
    await chmod(this.path, 0o600);
    server.on('error', (e) => log('error', 'socket server error', { error: oneLine(e) }));
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    for (const c of this.sockets) c.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
    await unlink(this.path).catch(() => {});
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.setEncoding('utf8');
    let buf = '';
    let chain: Promise<void> = Promise.resolve();
    let unsubscribe: (() => void) | undefined;
    const send = (msg: Reply) => {
      if (!sock.destroyed && sock.writable) sock.write(JSON.stringify(msg) + '\n');
    };
    sock.on('error', () => {}); // EPIPE/ECONNRESET from clients that left
    sock.on('close', () => {
      this.sockets.delete(sock);
      unsubscribe?.();
    });
    sock.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) chain = chain.then(() => this.one(line, send, (u) => (unsubscribe = u)));
      }
      if (buf.length > MAX_LINE) {
        buf = '';
        this.errors++;
        chain = chain.then(() => {
          send({ ok: false, error: `request longer than ${MAX_LINE} bytes; closing` });
          sock.end();
        });
      }
    });
  }

  private async one(line: string, send: (m: Reply) => void, onSub: (u: () => void) => void): Promise<void> {
    this.requests++;
    const p = parseRequest(line);
    if (!p.ok) {
      this.errors++;
      send({ ok: false, error: p.error });
      return;
    }
    const req = p.req;
    try {
      if (req.op === 'subscribe') {
        send({ ok: true, op: 'subscribe' });
        onSub(this.handlers.subscribe(send));
        return;
      }
      const r = await this.handlers.handle(req);
      send({ ok: true, op: req.op, ...r });
    } catch (e) {
      this.errors++;
      send({ ok: false, op: req.op, error: oneLine(e), ...(e instanceof Error && 'kind' in e ? { kind: (e as { kind: unknown }).kind } : {}) });
    }
  }
}
