/**
 * The TCP listener (off by default): 127.0.0.1 unless an address is configured. Every request
 * carries "token", compared with the content of a token file that must be a regular file of ours
 * with mode 0600 (read at start and on reload); optionally the read-only ops (status, ping, jobs,
 * wait, subscribe) without it. Per connection: request size and rate limits, and the limits of
 * session.ts; at most maxConnections at once.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import { createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { READ_ONLY_OPS, type Request } from '../protocol.js';
import { UserError, oneLine } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { closeServer, newStats, serveStream, type Handlers, type Limits, type Listener } from './session.js';

export interface TcpOptions {
  address: string;
  port: number;
  tokenFile: string;
  maxLine: number;
  ratePerSecond: number;
  readOnlyWithoutToken: boolean;
  maxConnections: number;
  /** Other limits of session.ts (tests shorten the unfinished-line timeout). */
  limits?: Partial<Limits>;
}

const euid = () => (typeof process.geteuid === 'function' ? process.geteuid() : 0);
const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** The token: a regular file of ours, mode 0600 (or stricter), 16-1024 printable characters. */
export async function readTokenFile(path: string): Promise<string> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    throw new UserError(`TCP listener: cannot read the token file ${path}: ${oneLine(e)}`);
  }
  if (!st.isFile()) throw new UserError(`TCP listener: the token file ${path} is not a regular file`);
  if (st.uid !== euid() || (st.mode & 0o077) !== 0) throw new UserError(`TCP listener: the token file ${path} must be owned by uid ${euid()} with mode 0600`);
  const tok = (await readFile(path, 'utf8')).trim();
  if (!/^[\x21-\x7e]{16,1024}$/.test(tok)) throw new UserError(`TCP listener: the token in ${path} must be 16-1024 printable characters without spaces`);
  return tok;
}

export class TcpListener implements Listener {
  readonly kind = 'tcp';
  readonly stats = newStats();
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private token: Buffer | undefined;

  constructor(
    readonly opts: TcpOptions,
    private readonly handlers: Handlers,
  ) {}

  get address(): string {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return `${this.opts.address}:${a?.port ?? this.opts.port}`;
  }

  /** The bound port (the configured one, or the kernel's choice for port 0). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null | undefined)?.port ?? this.opts.port;
  }

  authorize(req: Request, token: string | undefined): string | null {
    if (token !== undefined) {
      const ok = this.token !== undefined && timingSafeEqual(digest(token), this.token);
      return ok ? null : 'bad token';
    }
    if (this.opts.readOnlyWithoutToken && READ_ONLY_OPS.includes(req.op)) return null;
    return `a token is required for ${req.op}${this.opts.readOnlyWithoutToken ? '' : ' (every request needs one)'}`;
  }

  async listen(): Promise<void> {
    this.token = digest(await readTokenFile(this.opts.tokenFile));
    const limits: Limits = {
      ...this.opts.limits,
      maxLine: this.opts.maxLine,
      ratePerSecond: this.opts.ratePerSecond,
      authorize: (req: Request, token: string | undefined) => this.authorize(req, token),
      maxRefusals: 5,
    };
    const server = createServer({ allowHalfOpen: true }, (s) => {
      this.sockets.add(s);
      this.stats.connections = this.sockets.size;
      s.setNoDelay(true);
      serveStream(s, this.handlers, limits, this.stats, () => {
        this.sockets.delete(s);
        this.stats.connections = this.sockets.size;
      });
    });
    server.maxConnections = this.opts.maxConnections;
    server.on('drop', () => this.stats.dropped++);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new UserError(`TCP listener: cannot listen on ${this.opts.address}:${this.opts.port}: ${oneLine(e)}`)));
      server.listen({ host: this.opts.address, port: this.opts.port, backlog: 128 }, () => resolve());
    });
    server.removeAllListeners('error');
    server.on('error', (e) => log('error', 'TCP listener error', { error: oneLine(e) }));
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await closeServer(s, this.sockets);
  }
}
