/** Client of the IMDS control API (HTTP over the unix socket in the lab dir). */
import http from 'node:http';
import type { Fault, ImdsStats, RequestRecord } from './imds.js';
import { UserError } from '../../src/util/errors.js';

export function control<T>(sock: string, method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        socketPath: sock,
        method,
        path,
        headers: data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {},
        timeout: timeoutMs,
      },
      (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (s += c));
        res.on('end', () => {
          let v: unknown;
          try {
            v = JSON.parse(s);
          } catch {
            return reject(new Error(`imds control: bad answer to ${method} ${path}: ${s.slice(0, 200)}`));
          }
          if ((res.statusCode ?? 500) >= 400) {
            const msg = (v as { error?: string }).error ?? `HTTP ${res.statusCode}`;
            return reject(res.statusCode === 400 ? new UserError(msg) : new Error(`imds control: ${msg}`));
          }
          resolve(v as T);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`imds control: ${method} ${path} timed out`)));
    req.on('error', (e) => reject(new Error(`imds control (${sock}): ${e.message}`)));
    if (data) req.write(data);
    req.end();
  });
}

export const imdsHealth = (sock: string) => control<{ ok: boolean; pid: number }>(sock, 'GET', '/health', undefined, 1000);
export const imdsStats = (sock: string) => control<ImdsStats>(sock, 'GET', '/stats');
export const imdsResetStats = (sock: string) => control<ImdsStats>(sock, 'POST', '/stats/reset');
export const imdsRequests = (sock: string, sinceMs = 0) => control<RequestRecord[]>(sock, 'GET', `/requests?since=${sinceMs}`);
export const imdsReload = (sock: string) => control<{ ok: boolean }>(sock, 'POST', '/reload');
export const imdsStop = (sock: string) => control<ImdsStats>(sock, 'POST', '/stop');
export const imdsStart = (sock: string) => control<ImdsStats>(sock, 'POST', '/start');
export const imdsSetFault = (sock: string, f: Fault) => control<ImdsStats>(sock, 'PUT', '/fault', f);
export const imdsClearFault = (sock: string) => control<ImdsStats>(sock, 'DELETE', '/fault');
