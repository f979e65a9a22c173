/**
 * What every listener shares: one request line → parse → authorize → rate limit → handler, with
 * the same errors everywhere; and a stream connection (unix, TCP) framed into lines with the same
 * limits (line length, requests in flight, unfinished lines, unread replies). A bad client costs
 * an error reply and, past a limit, its connection; never the daemon, never another client.
 */
import type { Server, Socket } from 'node:net';
import { parseRequest, type Request } from '../protocol.js';
import { oneLine } from '../../util/errors.js';

export type Reply = Record<string, unknown>;
export type Send = (msg: Reply) => void;

export interface Handlers {
  /** Answer for every op but subscribe; `send` carries progress lines before the answer (wait). */
  handle(req: Exclude<Request, { op: 'subscribe' }>, send: Send): Promise<Reply> | Reply;
  /** Start streaming to `send`; returns the unsubscribe function. */
  subscribe(send: Send): () => void;
}

export interface Limits {
  /** Longest request line (bytes). */
  maxLine: number;
  /** Error text when the request may not run (TCP tokens); null: allowed. */
  authorize?: (req: Request, token: string | undefined) => string | null;
  /** Requests per second per connection (token bucket; bursts of twice that). 0: no limit. */
  ratePerSecond?: number;
  /** Close a connection after this many refused (unauthorized, rate-limited) requests. */
  maxRefusals?: number;
  /** Close a connection whose unfinished line is older than this (slow clients). */
  partialLineMs?: number;
  /** Drop a connection whose unread replies exceed this many bytes (clients that do not read). */
  maxPendingBytes?: number;
  /** Requests queued on one connection before it is closed. */
  maxInFlight?: number;
}

export const DEFAULT_LIMITS = { partialLineMs: 10_000, maxPendingBytes: 4 << 20, maxInFlight: 64, maxRefusals: 20 };

export interface ListenerStats {
  connections: number;
  requests: number;
  errors: number;
  refused: number;
  dropped: number;
}

/** Every listener: the same protocol behind a different transport. */
export interface Listener {
  readonly kind: 'unix' | 'fifo' | 'tcp';
  readonly address: string;
  listen(): Promise<void>;
  close(): Promise<void>;
  readonly stats: ListenerStats;
}

export const newStats = (): ListenerStats => ({ connections: 0, requests: 0, errors: 0, refused: 0, dropped: 0 });

/** Per-connection token bucket. */
export class Rate {
  private tokens: number;
  private at = Date.now();
  constructor(private readonly perSecond: number) {
    this.tokens = perSecond * 2;
  }
  take(): boolean {
    if (this.perSecond <= 0) return true;
    const now = Date.now();
    this.tokens = Math.min(this.perSecond * 2, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface LineContext {
  handlers: Handlers;
  limits: Limits;
  stats: ListenerStats;
  rate: Rate;
  send: Send;
  /** Called with subscribe's unsubscribe function. */
  onSubscribe(unsub: () => void): void;
  /** A refusal (unauthorized or rate-limited); returns true when the connection should close. */
  refused(): boolean;
}

/** One request line, answered through ctx.send. Never throws. Returns false to close the connection. */
export async function handleLine(line: string, ctx: LineContext): Promise<boolean> {
  const { stats, limits, send } = ctx;
  stats.requests++;
  const p = parseRequest(line, limits.maxLine);
  if (!p.ok) {
    stats.errors++;
    send({ ok: false, ...(p.op ? { op: p.op } : {}), error: p.error });
    return true;
  }
  const req = p.req;
  const denied = limits.authorize?.(req, p.token) ?? null;
  if (denied !== null) {
    stats.refused++;
    send({ ok: false, op: req.op, error: `unauthorized: ${denied}` });
    return !ctx.refused();
  }
  if (!ctx.rate.take()) {
    stats.refused++;
    send({ ok: false, op: req.op, error: `rate limit: more than ${limits.ratePerSecond} requests per second on this connection` });
    return !ctx.refused();
  }
  try {
    if (req.op === 'subscribe') {
      const unsub = ctx.handlers.subscribe(send);
      send({ ok: true, op: 'subscribe' });
      ctx.onSubscribe(unsub);
      return true;
    }
    const r = await ctx.handlers.handle(req, send);
    send({ ok: true, op: req.op, ...r });
  } catch (e) {
    stats.errors++;
    send({ ok: false, op: req.op, error: oneLine(e), ...(e instanceof Error && 'kind' in e ? { kind: (e as { kind: unknown }).kind } : {}) });
  }
  return true;
}

/** Serve one stream connection (unix or TCP) until it closes; its server must allow half-open connections. */
export function serveStream(sock: Socket, handlers: Handlers, limits: Limits, stats: ListenerStats, onClose: () => void): void {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  sock.setEncoding('utf8');
  let buf = '';
  let chain: Promise<void> = Promise.resolve();
  let inFlight = 0;
  let refusals = 0;
  let closing = false;
  let partialTimer: NodeJS.Timeout | undefined;
  const unsubs: (() => void)[] = [];
  const send: Send = (msg) => {
    if (sock.destroyed || !sock.writable) return;
    if (sock.writableLength > lim.maxPendingBytes) {
      // The client does not read what it asked for: drop it rather than buffer without end.
      stats.dropped++;
      sock.destroy();
      return;
    }
    sock.write(JSON.stringify(msg) + '\n');
  };
  const closeWith = (error: string) => {
    if (closing) return;
    closing = true;
    stats.errors++;
    buf = '';
    clearTimeout(partialTimer);
    chain = chain.then(() => {
      send({ ok: false, error });
      sock.end();
      // A client that never reads its error must not hold the connection.
      setTimeout(() => sock.destroy(), 2000).unref();
    });
  };
  const ctx: LineContext = {
    handlers,
    limits: lim,
    stats,
    rate: new Rate(lim.ratePerSecond ?? 0),
    send,
    onSubscribe: (u) => unsubs.push(u),
    refused: () => ++refusals >= lim.maxRefusals,
  };
  sock.on('error', () => {}); // EPIPE/ECONNRESET from clients that left
  // A client that sends its requests and half-closes (nc, socat) still gets every answer.
  sock.on('end', () => {
    chain = chain.then(() => {
      sock.end();
    });
  });
  sock.on('close', () => {
    clearTimeout(partialTimer);
    for (const u of unsubs) u();
    onClose();
  });
  sock.on('data', (d: string) => {
    if (closing) return;
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0 && !closing; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      // The same error whether the line came whole or in pieces (below).
      if (line.length > lim.maxLine) return closeWith(`request longer than ${lim.maxLine} bytes; closing`);
      if (++inFlight > lim.maxInFlight) return closeWith(`more than ${lim.maxInFlight} requests waiting on this connection; closing`);
      chain = chain.then(async () => {
        const keep = await handleLine(line, ctx);
        inFlight--;
        if (!keep && !closing) {
          closing = true;
          stats.dropped++;
          sock.end();
          setTimeout(() => sock.destroy(), 2000).unref();
        }
      });
    }
    if (buf.length > lim.maxLine) return closeWith(`request longer than ${lim.maxLine} bytes; closing`);
    clearTimeout(partialTimer);
    partialTimer = undefined;
    if (buf.length > 0) {
      partialTimer = setTimeout(() => closeWith(`request line unfinished after ${lim.partialLineMs} ms; closing`), lim.partialLineMs);
      partialTimer.unref();
    }
  });
}

/** Stop a stream listener: drop its connections, then wait for the server to close. */
export async function closeServer(server: Server | undefined, sockets: Iterable<Socket>): Promise<void> {
  for (const c of sockets) c.destroy();
  if (server) await new Promise<void>((r) => server.close(() => r()));
}
