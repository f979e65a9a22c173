/**
 * The CLI's client of the daemon's unix socket for jobs: one connection, requests in turn, each
 * answered by a line with "ok" after any number of progress lines ({"type":…}). connectDaemon()
 * resolves null when no daemon runs (no advertisement, or nobody answers on its socket).
 */
import { createConnection, type Socket } from 'node:net';
import { readAdvert } from './kick.js';

export type Msg = Record<string, unknown>;

export class DaemonConn {
  private buf = '';
  private pending: { resolve: (m: Msg) => void; reject: (e: Error) => void; onMsg?: (m: Msg) => void } | null = null;
  private closedWith: Error | null = null;

  constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        let m: Msg;
        try {
          m = JSON.parse(line) as Msg;
        } catch {
          continue;
        }
        const p = this.pending;
        if (!p) continue;
        if ('ok' in m) {
          this.pending = null;
          p.resolve(m);
        } else p.onMsg?.(m);
      }
    });
    const gone = (why: string) => {
      this.closedWith = new Error(why);
      const p = this.pending;
      this.pending = null;
      p?.reject(this.closedWith);
    };
    sock.on('error', (e) => gone(`daemon connection failed: ${e.message}`));
    sock.on('close', () => gone('the daemon closed the connection (did it stop?)'));
  }

  /** One request; its final answer ({ok, …}); progress lines go to onMsg. */
  ask(req: Msg, onMsg?: (m: Msg) => void): Promise<Msg> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject, onMsg };
      this.sock.write(JSON.stringify(req) + '\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** A connection to the running daemon, or null when there is none. */
export function connectDaemon(timeoutMs = 1000): Promise<DaemonConn | null> {
  const ad = readAdvert();
  if (!ad) return Promise.resolve(null);
  return new Promise((resolve) => {
    const s = createConnection(ad.socket);
    const t = setTimeout(() => {
      s.destroy();
      resolve(null);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.removeAllListeners('error');
      resolve(new DaemonConn(s));
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(null);
    });
  });
}
