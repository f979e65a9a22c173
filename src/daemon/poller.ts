/**
 * The daemon's metadata poller, for changes no device event announces (a secondary IP assigned to
 * a NIC): every probe_interval_seconds it makes the bridge's cheap probe (one small metadata read,
 * probe.ts); only a probe that says "changed" — or, where the datasource has no probe, every
 * poll_interval_seconds — re-reads the network subtree, compares its fingerprint with the one last
 * acted on, and hands a change to the pipeline (pipeline/changes.ts metadataChanged). Jittered;
 * backing off on errors.
 */
import type { InstanceSummary } from '../../bridge/index.js';
import { withBridge, type PipelineDeps } from '../pipeline/deps.js';
import { metadataChanged, type Exclusive, type MetadataOutcome } from '../pipeline/changes.js';
import { describePolicy } from '../pipeline/policies.js';
import { fingerprint, describeChange } from './fingerprint.js';
import { nextPollMs, probeVerdict, probing, RequestWindow } from './probe.js';
import { log, since } from '../util/log.js';
import { oneLine } from '../util/errors.js';

export type MetadataChangeRecord = { type: 'metadata_change'; time: string; change: string; policy: string; duration_ms: number } & Omit<MetadataOutcome, 'accepted'>;

export interface PollerHost {
  deps: PipelineDeps;
  exclusive: Exclusive;
  stopping(): boolean;
  /** Run the poll as a job (the daemon's job queue). */
  schedule(run: () => Promise<void>): void;
  /** Events are queued: drain them first; the next poll compares against what they leave. */
  queued(): Promise<boolean>;
  drain(): void;
  emit(rec: MetadataChangeRecord): void;
}

export class MetadataPoller {
  /** failedChanges: consecutive polls whose change was not handled (each retried by a full re-read, backing off). */
  readonly stats = { last: null as string | null, lastChange: null as string | null, lastError: null as string | null, errors: 0, nextAt: null as number | null, polls: 0, lastMs: null as number | null, refreshes: 0, failedChanges: 0 };
  /** The probe: null = not tried yet; false = the datasource has none (full re-reads instead). */
  readonly probe = { supported: null as boolean | null, probes: 0, changed: 0, notModified: 0, lastResource: null as string | null, lastChanged: null as string | null, targets: null as number | null, requests: new RequestWindow() };
  /** The fingerprint of the metadata last acted on, and its summary. */
  baseline: string | undefined;
  summary: InstanceSummary | undefined;
  summaryAt: number | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: PollerHost) {}

  /** The metadata now acted on (after a batch, at start). */
  accept(s: InstanceSummary): void {
    this.summary = s;
    this.summaryAt = Date.now();
    this.baseline = fingerprint(s);
    this.stats.failedChanges = 0; // a batch acted on the whole of the current metadata
    // "No probe" may have been a partial cache an event since repaired: ask again (costs no request).
    if (this.probe.supported === false) this.probe.supported = null;
  }

  arm(first: boolean): void {
    clearTimeout(this.timer);
    if (this.host.stopping()) return;
    const ms = nextPollMs(this.host.deps.config().daemon, this.probe.supported, first ? 0 : this.stats.errors + this.stats.failedChanges);
    this.stats.nextAt = Date.now() + ms;
    this.timer = setTimeout(() => this.host.schedule(() => this.pollOnce().finally(() => this.arm(false))), ms);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** Whether the next poll starts with a probe (for status). */
  probing(): boolean {
    return probing(this.host.deps.config().daemon, this.probe.supported);
  }

  /** One poll: probe (where there is a probe); on a change, or without one, re-read the network
   * subtree, compare its fingerprint, act on a change. */
  async pollOnce(): Promise<void> {
    const { deps } = this.host;
    if (!deps.bootFinished()) return;
    if (await this.host.queued()) {
      this.host.drain();
      return;
    }
    const t0 = performance.now();
    let r;
    try {
      r = await withBridge(deps, 'metadata poll', async (b) => {
        // Without a baseline yet (no summary at start) the first poll re-reads: what it finds is accepted as is.
        // After a change that failed, too: the probe compares with what the bridge now holds (the
        // re-read that found the change), so it would never report that change again.
        if (this.probing() && this.baseline !== undefined && this.stats.failedChanges === 0) {
          const p = await b.probeNetwork(1);
          const verdict = probeVerdict(p);
          if (p.supported) {
            this.probe.probes++;
            this.probe.requests.add(p.requests);
            this.probe.lastResource = p.resource;
            this.probe.targets = p.targets;
            if (p.not_modified) this.probe.notModified++;
          }
          if (verdict === 'unchanged') return null;
          if (verdict === 'unsupported') {
            this.probe.supported = false;
            log('info', 'the datasource has no cheap metadata probe; re-reading the network metadata every poll_interval_seconds');
          } else {
            this.probe.supported = true;
            this.probe.changed++;
            this.probe.lastChanged = new Date().toISOString();
            log('debug', 'metadata probe saw a change; re-reading the network metadata', { resource: p.resource });
          }
        }
        this.stats.refreshes++;
        const net = await b.refreshNetwork(2);
        return net.supported ? net : await b.refresh({ timeout: 2, maxWait: 5 });
      });
      this.stats.errors = 0;
      this.stats.lastError = null;
    } catch (e) {
      this.stats.errors++;
      this.stats.lastError = oneLine(e);
      log('warn', 'metadata poll failed; backing off', { error: this.stats.lastError, errors: this.stats.errors });
      return;
    } finally {
      this.stats.polls++;
      this.stats.last = new Date().toISOString();
      this.stats.lastMs = since(t0);
    }
    if (r === null) {
      this.probe.supported = true;
      return;
    }
    if (this.baseline === undefined) return this.accept(r.summary);
    if (fingerprint(r.summary) === this.baseline) {
      this.stats.failedChanges = 0; // back to what was last acted on: nothing left to retry
      return;
    }
    const change = describeChange(this.summary, r.summary);
    const policy = describePolicy(deps.config().events.metadata_change);
    this.stats.lastChange = new Date().toISOString();
    log('info', 'metadata changed without a device event', { change, policy });
    const t1 = performance.now();
    const { accepted, ...out } = await metadataChanged(deps, this.host.exclusive, r, this.summary, change);
    if (accepted) this.accept(accepted);
    this.stats.failedChanges = out.result === 'failed' ? this.stats.failedChanges + 1 : 0;
    const rec: MetadataChangeRecord = { type: 'metadata_change', time: new Date().toISOString(), change, policy, duration_ms: since(t1), ...out };
    log(out.result === 'failed' ? 'error' : 'info', `metadata change ${out.result}`, { change, policy, duration_ms: rec.duration_ms, reason: out.reason, routing_changes: out.routing_changes, brought_up: out.brought_up?.join(',') });
    this.host.emit(rec);
  }
}
