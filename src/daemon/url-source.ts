/**
 * A URL event source: polls an HTTP URL (daemon.url_sources) with If-None-Match, backing off on
 * errors (util/backoff.ts); a changed ETag (or, without one, a changed body) runs the configured
 * policy (pipeline/policies.ts: apply = poll the metadata now, reconcile = routing repair, run =
 * the command with HOTPLUG_URL and HOTPLUG_ETAG, ignore). The first answer is the baseline. A
 * long-poll endpoint (one that answers when something changed) works with a long timeout_seconds.
 */
import { createHash } from 'node:crypto';
import type { EventPolicy } from '../config.js';
import type { UrlSourceConfig } from '../config-daemon.js';
import { describePolicy, dispatch, type PolicyOutcome } from '../pipeline/policies.js';
import { Backoff } from '../util/backoff.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';

const MAX_BODY = 1 << 20;

export type UrlChangeRecord = { type: 'url_change'; time: string; url: string; etag: string; policy: string; result: 'ok' | 'failed'; handler: string; reason?: string };

export interface UrlSourceHost {
  /** Run `fn` as a job on the daemon's queue. */
  schedule(what: string, fn: () => Promise<void>): void;
  stopping(): boolean;
  policy(): EventPolicy;
  /** Metadata changed: poll it now (the metadata poller's job, which applies a change). */
  pollMetadata(): Promise<Omit<PolicyOutcome, 'handler'>>;
  reconcile(): Promise<Omit<PolicyOutcome, 'handler'>>;
  emit(rec: UrlChangeRecord): void;
}

/**
 * What a poll found: the entity tag (or body hash) now, or that it is unchanged (304). node:http,
 * not fetch: the daemon runs --jitless, without the WebAssembly fetch's parser needs.
 */
export async function fetchTag(url: string, etag: string | undefined, timeoutMs: number): Promise<{ status: number; tag: string | null }> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'User-Agent': 'cloud-hotplug' };
    if (etag) headers['If-None-Match'] = etag;
    const req = mod.request(u, { method: 'GET', headers, timeout: timeoutMs }, (res) => {
      const status = res.statusCode ?? 0;
      if (status === 304) {
        res.resume();
        return resolve({ status, tag: null });
      }
      if (status !== 200) {
        res.resume();
        return reject(new Error(`HTTP ${status}`));
      }
      const header = res.headers.etag;
      const hash = createHash('sha256');
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) req.destroy(new Error(`body larger than ${MAX_BODY} bytes`));
        else hash.update(c);
      });
      res.on('end', () => resolve({ status, tag: header && header.length <= 512 ? header : `sha256:${hash.digest('hex')}` }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export class UrlSource {
  readonly stats = {
    state: 'starting' as 'starting' | 'ok' | 'backoff' | 'stopped',
    polls: 0,
    changes: 0,
    not_modified: 0,
    errors: 0,
    last_error: null as string | null,
    last_poll: null as string | null,
    last_change: null as string | null,
    etag: null as string | null,
    next_at: null as number | null,
  };
  private timer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private stopped = false;

  constructor(
    readonly cfg: UrlSourceConfig,
    private readonly host: UrlSourceHost,
  ) {
    const ms = cfg.interval_seconds * 1000;
    this.backoff = new Backoff({ initialMs: ms, maxMs: Math.max(ms, 300_000) });
  }

  start(): void {
    this.arm(0);
  }

  stop(): void {
    this.stopped = true;
    this.stats.state = 'stopped';
    this.stats.next_at = null;
    clearTimeout(this.timer);
  }

  private arm(ms: number): void {
    clearTimeout(this.timer);
    if (this.stopped || this.host.stopping()) return;
    this.stats.next_at = Date.now() + ms;
    this.timer = setTimeout(() => void this.pollOnce().then((delay) => this.arm(delay)), ms);
  }

  /** One poll; returns the delay before the next. Never throws. */
  async pollOnce(): Promise<number> {
    const interval = this.cfg.interval_seconds * 1000;
    this.stats.polls++;
    this.stats.last_poll = new Date().toISOString();
    let r;
    try {
      // Not a job: a request in flight must not hold up events (a long poll waits minutes).
      r = await fetchTag(this.cfg.url, this.stats.etag ?? undefined, this.cfg.timeout_seconds * 1000);
    } catch (e) {
      this.stats.errors++;
      this.stats.last_error = oneLine(e);
      this.stats.state = 'backoff';
      const delay = Math.max(1000, this.backoff.next());
      log('warn', 'URL source poll failed; backing off', { url: this.cfg.url, error: this.stats.last_error, retry_ms: Math.round(delay) });
      return delay;
    }
    this.backoff.reset();
    this.stats.state = 'ok';
    this.stats.last_error = null;
    if (r.status === 304) {
      this.stats.not_modified++;
      return interval;
    }
    const first = this.stats.etag === null;
    if (r.tag === this.stats.etag) return interval;
    this.stats.etag = r.tag;
    if (first) return interval; // the baseline
    this.stats.changes++;
    this.stats.last_change = new Date().toISOString();
    const tag = r.tag!;
    log('info', 'URL source changed', { url: this.cfg.url, etag: tag, policy: describePolicy(this.policy()) });
    this.host.schedule(`url change ${this.cfg.url}`, () => this.runPolicy(tag));
    return interval;
  }

  private policy(): EventPolicy {
    return this.cfg.policy ?? this.host.policy();
  }

  private async runPolicy(etag: string): Promise<void> {
    const policy = this.policy();
    let out: PolicyOutcome;
    try {
      out = await dispatch(policy, {
        kind: 'url_change',
        vars: { HOTPLUG_EVENT: 'url_change', HOTPLUG_ACTION: 'change', HOTPLUG_URL: this.cfg.url, HOTPLUG_ETAG: etag, HOTPLUG_CHANGE: `url ${this.cfg.url}` },
        apply: () => this.host.pollMetadata(),
        reconcile: () => this.host.reconcile(),
      });
    } catch (e) {
      out = { handler: 'apply', ok: false, reason: oneLine(e) };
    }
    log(out.ok ? 'info' : 'warn', `URL change ${out.ok ? 'handled' : 'failed'}`, { url: this.cfg.url, handler: out.handler, reason: out.reason });
    this.host.emit({ type: 'url_change', time: new Date().toISOString(), url: this.cfg.url, etag, policy: describePolicy(policy), result: out.ok ? 'ok' : 'failed', handler: out.handler, reason: out.reason });
  }
}
