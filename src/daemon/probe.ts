/**
 * Pure parts of the poller's cheap change probe (bridge probe_network, one small metadata read):
 * which interval the next poll waits, what a probe reply asks the poller to do, and the count of
 * metadata requests over the last minute that `hotplug status` shows.
 */
import type { Reply } from '../../bridge/index.js';
import { pollDelay } from './fingerprint.js';
import { jittered } from '../util/backoff.js';

/** Jitter of the probe interval: small, so the shortest gap (and so the busiest minute) stays near the mean. */
export const PROBE_JITTER = 0.1;

export interface PollIntervals {
  /** Seconds between probes; 0 = no probe (a full re-read every poll_interval_seconds). */
  probe_interval_seconds: number;
  /** Seconds between full re-reads where there is no probe. */
  poll_interval_seconds: number;
}

/** Whether the next poll is a probe: configured, and not known to be unsupported by the datasource. */
export function probing(cfg: PollIntervals, supported: boolean | null): boolean {
  return cfg.probe_interval_seconds > 0 && supported !== false;
}

/**
 * Delay before the next poll: the probe interval ±PROBE_JITTER while probing, else the full
 * re-read interval ±20 %; after consecutive errors either backs off (pollDelay).
 */
export function nextPollMs(cfg: PollIntervals, supported: boolean | null, errors: number, rnd: () => number = Math.random): number {
  if (!probing(cfg, supported)) return pollDelay(cfg.poll_interval_seconds * 1000, errors, 300_000, rnd);
  const ms = cfg.probe_interval_seconds * 1000;
  return errors > 0 ? pollDelay(ms, errors, 300_000, rnd) : jittered(ms, PROBE_JITTER, rnd);
}

/** The most probes one minute can hold at this interval (every gap at least interval × (1 − jitter)). */
export function maxProbesPerMinute(intervalS: number): number {
  if (!(intervalS > 0)) return 0;
  return Math.floor(60 / (intervalS * (1 - PROBE_JITTER))) + 1;
}

export type ProbeVerdict = 'unchanged' | 'changed' | 'unsupported';

/** What a probe reply asks of the poller: nothing, a full re-read, or to stop probing (full re-reads instead). */
export function probeVerdict(r: Reply<'probe_network'>): ProbeVerdict {
  if (!r.supported) return 'unsupported';
  return r.changed ? 'changed' : 'unchanged';
}

/** Metadata requests counted with their time, for "requests over the last minute". */
export class RequestWindow {
  private entries: { t: number; n: number }[] = [];
  total = 0;

  add(n: number, t = Date.now()): void {
    if (n <= 0) return;
    this.total += n;
    this.entries.push({ t, n });
    this.trim(t);
  }

  /** Requests in the minute before `t`. */
  lastMinute(t = Date.now()): number {
    this.trim(t);
    return this.entries.reduce((s, e) => s + e.n, 0);
  }

  private trim(t: number): void {
    while (this.entries.length && this.entries[0]!.t <= t - 60_000) this.entries.shift();
  }
}
