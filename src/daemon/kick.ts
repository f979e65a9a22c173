/**
 * The smallest possible client of the daemon's socket, for the udev hook's hot path: node builtins
 * only. The daemon advertises itself in /run/cloud-hotplug/daemon.json ({pid, socket}); a missing
 * advertisement, a refused connection or no answer within the timeout all mean "no daemon", and the
 * caller falls back to starting a one-shot worker.
 */
import { createConnection } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { paths } from '../paths.js';

export const advertFile = (): string => join(paths.runDir, 'daemon.json');

export interface Advert {
  pid: number;
  socket: string;
  started: string;
}

/** The running daemon's advertisement, or null (absent/corrupt). Does not check that it is alive. */
export function readAdvert(): Advert | null {
  try {
    const v = JSON.parse(readFileSync(advertFile(), 'utf8')) as Partial<Advert>;
    if (typeof v.socket !== 'string' || !v.socket.startsWith('/') || typeof v.pid !== 'number') return null;
    return { pid: v.pid, socket: v.socket, started: String(v.started ?? '') };
  } catch {
    return null;
  }
}

/**
 * One request, one JSON-line answer. Resolves null when nobody listens (or no answer in time),
 * so callers can fall back to working in-process.
 */
export function request(socket: string, req: Record<string, unknown>, timeoutMs = 1000): Promise<Record<string, unknown> | null> {
  return new Promise((resolve) => {
    let buf = '';
    let done = false;
    const c = createConnection(socket);
    const finish = (v: Record<string, unknown> | null) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      c.destroy();
      resolve(v);
    };
    const t = setTimeout(() => finish(null), timeoutMs);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const v = JSON.parse(buf.slice(0, nl)) as unknown;
        finish(typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null);
      } catch {
        finish(null);
      }
    });
    c.on('error', () => finish(null));
    c.on('close', () => finish(null));
  });
}

/** Tell the daemon events were queued. True only if a daemon acknowledged. */
export async function kick(timeoutMs = 1000, extra: Record<string, unknown> = {}): Promise<boolean> {
  const ad = readAdvert();
  if (!ad) return false;
  const r = await request(ad.socket, { op: 'kick', ...extra }, timeoutMs);
  return r?.ok === true;
}
