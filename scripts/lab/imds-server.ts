/**
 * The fake EC2 instance metadata service itself: node:http serving the model file (re-read
 * whenever it changes) with IMDSv2 tokens, request statistics, lag (NICs with a future visibleAt
 * are hidden) and the injected fault. imds.ts runs it and puts the control API in front.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { statSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { API_VERSIONS, lookup, type MetadataModel } from './metadata.js';
import { openstackLookup } from './openstack-md.js';
import type { Fault, ImdsStats, RequestRecord } from './imds-api.js';

const NOT_FOUND_BODY =
  '<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n' +
  '\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n' +
  ' <head>\n  <title>404 - Not Found</title>\n </head>\n <body>\n  <h1>404 - Not Found</h1>\n </body>\n</html>\n';

function statusBody(code: number): string {
  if (code === 404) return NOT_FOUND_BODY;
  return `${code} - ${http.STATUS_CODES[code] ?? 'Error'}\n`;
}

export class Imds {
  private model: MetadataModel | null = null;
  private modelKey = '';
  private tokens = new Map<string, number>();
  private stats!: ImdsStats;
  private requests: RequestRecord[] = [];
  private fault: Fault | null = null;
  private answering = false;
  private server: http.Server;
  private hanging = new Set<Socket>();

  constructor(
    private modelPath: string,
    private address: string,
    private port: number,
  ) {
    this.resetStats();
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  resetStats(): void {
    this.stats = {
      total: 0,
      tokenPuts: 0,
      unauthorized: 0,
      faultsInjected: 0,
      byStatus: {},
      byPrefix: {},
      byPath: {},
      byVersion: {},
      since: new Date().toISOString(),
      answering: this.answering,
      httpTokens: this.model?.httpTokens ?? 'required',
      fault: null,
    };
    this.requests = [];
  }

  reload(force = false): MetadataModel {
    const st = statSync(this.modelPath);
    const key = `${st.ino}:${st.mtimeMs}:${st.size}`;
    if (force || !this.model || key !== this.modelKey) {
      this.model = JSON.parse(readFileSync(this.modelPath, 'utf8')) as MetadataModel;
      this.modelKey = key;
    }
    return this.model!;
  }

  async start(): Promise<void> {
    if (this.answering) return;
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error) => reject(e);
      this.server.once('error', onErr);
      this.server.listen(this.port, this.address, () => {
        this.server.off('error', onErr);
        resolve();
      });
    });
    this.answering = true;
  }

  async stop(): Promise<void> {
    if (!this.answering) return;
    this.answering = false;
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeAllConnections();
    for (const s of this.hanging) s.destroy();
    this.hanging.clear();
    await closed;
  }

  setFault(f: Fault | null): void {
    this.fault = f;
  }

  snapshot(): ImdsStats {
    return { ...this.stats, answering: this.answering, httpTokens: this.model?.httpTokens ?? '?', fault: this.fault };
  }

  recent(sinceMs: number): RequestRecord[] {
    return this.requests.filter((r) => r.t >= sinceMs);
  }

  private bump(rec: Record<string, number>, key: string): void {
    rec[key] = (rec[key] ?? 0) + 1;
  }

  private matchFault(method: string, segs: string[], isToken: boolean): Fault | null {
    const f = this.fault;
    if (!f) return null;
    if (f.mode === 'refuse-token' && !isToken) return null;
    if (f.pathPrefix) {
      const p = f.pathPrefix.replace(/^\/+/, '');
      const full = segs.join('/');
      const noVer = segs.slice(1).join('/');
      if (!full.startsWith(p) && !noVer.startsWith(p)) return null;
    }
    void method;
    if (f.count !== undefined) {
      f.count -= 1;
      if (f.count <= 0) this.fault = null;
    }
    this.stats.faultsInjected += 1;
    return f;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const t0 = performance.now();
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://imds');
    const path = url.pathname;
    const segs = path.split('/').filter((s) => s !== '');
    const isToken = path.replace(/\/+$/, '') === '/latest/api/token';
    const tokenHdr = req.headers['x-aws-ec2-metadata-token'];
    const token = typeof tokenHdr === 'string' ? tokenHdr : undefined;

    this.stats.total += 1;
    this.bump(this.stats.byPath, path);
    const ver = segs[0] ?? '/';
    this.bump(this.stats.byVersion, ver);
    const rest = segs.slice(1);
    this.bump(this.stats.byPrefix, rest.length ? rest[0]! : ver === '/' ? '/' : `${ver}/`);
    if (rest.length > 1) this.bump(this.stats.byPrefix, `${rest[0]}/${rest[1]}`);
    if (isToken && method === 'PUT') this.stats.tokenPuts += 1;

    const done = (status: number, body: string, headers: Record<string, string> = {}, faultName?: string) => {
      this.bump(this.stats.byStatus, String(status));
      if (status === 401) this.stats.unauthorized += 1;
      const ms = Math.round((performance.now() - t0) * 10) / 10;
      this.record({ t: Date.now(), method, path, status, ms, token: !!token, fault: faultName });
      return { status, body, headers };
    };

    const fault = this.matchFault(method, segs, isToken);
    if (fault) {
      const m = fault.mode;
      if (m === 'hang') {
        this.hanging.add(req.socket);
        req.socket.once('close', () => this.hanging.delete(req.socket));
        done(0, '', {}, m);
        return;
      }
      if (m === 'reset') {
        done(0, '', {}, m);
        req.socket.destroy();
        return;
      }
      if (m.startsWith('http')) {
        const code = Number(m.slice(4));
        const r = done(code, '', {}, m);
        this.send(res, r.status, statusBody(code), {}, method);
        return;
      }
      if (m === 'refuse-token') {
        done(403, '', {}, m);
        this.send(res, 403, statusBody(403), {}, method);
        return;
      }
      if (m === 'slow') {
        setTimeout(() => this.respond(req, res, method, path, segs, isToken, token, done, undefined), fault.delayMs ?? 1000);
        return;
      }
      if (m === 'truncate') {
        this.respond(req, res, method, path, segs, isToken, token, done, 'truncate');
        return;
      }
    }
    this.respond(req, res, method, path, segs, isToken, token, done, undefined);
  }

  private respond(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    method: string,
    path: string,
    segs: string[],
    isToken: boolean,
    token: string | undefined,
    done: (s: number, b: string, h?: Record<string, string>, f?: string) => { status: number; body: string; headers: Record<string, string> },
    faultName: 'truncate' | undefined,
  ): void {
    let r: { status: number; body: string; headers: Record<string, string> };
    try {
      r = this.route(req, method, segs, isToken, token, done, faultName);
    } catch (e) {
      r = done(500, '', {}, faultName);
      r.body = statusBody(500);
      process.stderr.write(`imds: error serving ${path}: ${(e as Error).message}\n`);
    }
    if (faultName === 'truncate') {
      const full = Buffer.from(r.body);
      res.writeHead(r.status, { 'Content-Type': 'text/plain', 'Content-Length': String(full.length + 64), ...r.headers });
      res.write(full.subarray(0, Math.floor(full.length / 2)));
      setTimeout(() => req.socket.destroy(), 10);
      return;
    }
    this.send(res, r.status, r.body, r.headers, method);
  }

  private route(
    req: http.IncomingMessage,
    method: string,
    segs: string[],
    isToken: boolean,
    token: string | undefined,
    done: (s: number, b: string, h?: Record<string, string>, f?: string) => { status: number; body: string; headers: Record<string, string> },
    faultName: string | undefined,
  ) {
    const model = this.reload();
    const now = Date.now();
    if (isToken) {
      if (method !== 'PUT') return done(405, statusBody(405), {}, faultName);
      const ttlHdr = req.headers['x-aws-ec2-metadata-token-ttl-seconds'];
      const ttl = Number(ttlHdr);
      if (typeof ttlHdr !== 'string' || !Number.isInteger(ttl) || ttl < 1 || ttl > 21600) {
        return done(400, statusBody(400), {}, faultName);
      }
      if (req.headers['x-forwarded-for']) return done(403, statusBody(403), {}, faultName);
      const tok = randomBytes(42).toString('base64').replace(/[+/]/g, 'A');
      this.tokens.set(tok, now + ttl * 1000);
      return done(200, tok, { 'X-Aws-Ec2-Metadata-Token-Ttl-Seconds': String(ttl) }, faultName);
    }
    if (method !== 'GET' && method !== 'HEAD') return done(405, statusBody(405), {}, faultName);
    if (segs[0] === 'openstack' && model.cloud && model.cloud !== 'ec2') {
      // Nova's own tree (openstack-md.ts): no tokens, JSON files, the same lag and faults.
      const os = openstackLookup(model, segs.slice(1), now);
      if (os.kind === 'missing') return done(404, NOT_FOUND_BODY, {}, faultName);
      return done(200, os.body, os.kind === 'leaf' && segs[segs.length - 1]!.endsWith('.json') ? { 'Content-Type': 'application/json' } : {}, faultName);
    }
    const headers: Record<string, string> = {};
    if (token !== undefined) {
      const exp = this.tokens.get(token);
      if (exp === undefined || exp < now) {
        if (exp !== undefined) this.tokens.delete(token);
        return done(401, statusBody(401), {}, faultName);
      }
      headers['X-Aws-Ec2-Metadata-Token-Ttl-Seconds'] = String(Math.max(0, Math.floor((exp - now) / 1000)));
    } else if (model.httpTokens === 'required') {
      return done(401, statusBody(401), {}, faultName);
    }
    if (segs.length === 0) return done(200, API_VERSIONS.join('\n'), headers, faultName);
    const ver = segs[0]!;
    if (!API_VERSIONS.includes(ver)) return done(404, NOT_FOUND_BODY, {}, faultName);
    const found = lookup(model, ver, segs.slice(1), now);
    if (found.kind === 'missing') return done(404, NOT_FOUND_BODY, {}, faultName);
    return done(200, found.body, headers, faultName);
  }

  private send(res: http.ServerResponse, status: number, body: string, headers: Record<string, string>, method: string): void {
    const buf = Buffer.from(body);
    res.writeHead(status, {
      'Content-Type': status === 404 ? 'text/html' : 'text/plain',
      'Content-Length': String(buf.length),
      Server: 'EC2ws',
      ...headers,
    });
    res.end(method === 'HEAD' ? undefined : buf);
  }

  private record(r: RequestRecord): void {
    this.requests.push(r);
    if (this.requests.length > 5000) this.requests.splice(0, this.requests.length - 5000);
    process.stdout.write(
      `${new Date(r.t).toISOString()} ${r.method} ${r.path} ${r.status || '-'}${r.fault ? ` fault=${r.fault}` : ''}${r.token ? ' token' : ''}\n`,
    );
  }
}
