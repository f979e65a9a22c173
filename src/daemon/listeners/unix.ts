/**
 * The daemon's unix socket listener: JSON lines (see protocol.ts and session.ts), mode 0600 (root
 * only: the kernel checks the socket file's write permission on connect). On by default.
 */
import { createServer, createConnection, type Server, type Socket } from 'node:net';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MAX_LINE } from '../protocol.js';
import { oneLine, UserError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { closeServer, newStats, serveStream, type Handlers, type Limits, type Listener } from './session.js';

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

export class UnixListener implements Listener {
  readonly kind = 'unix';
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  readonly stats = newStats();

  constructor(
    readonly path: string,
    private readonly handlers: Handlers,
    private readonly limits: Limits = { maxLine: MAX_LINE },
  ) {}

  get address(): string {
    return this.path;
  }

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
    const server = createServer({ allowHalfOpen: true }, (s) => {
      this.sockets.add(s);
      this.stats.connections = this.sockets.size;
      serveStream(s, this.handlers, this.limits, this.stats, () => {
        this.sockets.delete(s);
        this.stats.connections = this.sockets.size;
      });
    });
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
    await closeServer(s, this.sockets);
    await unlink(this.path).catch(() => {});
  }
}
