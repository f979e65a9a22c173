/**
 * The one backoff policy of the project: exponential growth from `initialMs` by `factor`, capped at
 * `maxMs`, with full jitter (uniform in [0, base]) so that retries of many hosts or NICs spread out.
 * Used by the metadata wait, the daemon's batch retry, the poller's error backoff and the
 * `ip monitor` restart; beside it, the small jitter of steady schedules (jittered). Randomness is
 * injectable so tests are deterministic.
 */
export interface BackoffPolicy {
  /** Base of the first delay. */
  initialMs: number;
  /** No single delay exceeds this. */
  maxMs: number;
  /** Growth per attempt (default 2). */
  factor?: number;
}

/** Delay before retry number `attempt` (1 = after the first failure). */
export function backoffDelay(attempt: number, p: BackoffPolicy, random: () => number = Math.random): number {
  const base = Math.min(p.maxMs, p.initialMs * (p.factor ?? 2) ** Math.max(0, attempt - 1));
  return random() * base;
}

/** A backoff that remembers its attempt count: next() after each failure, reset() after a success. */
export class Backoff {
  attempt = 0;
  constructor(
    readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    return backoffDelay(++this.attempt, this.policy, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** A steady schedule's jitter around a base: base × (1 ± spread) (polls, probes), not the full jitter of retries. */
export function jittered(baseMs: number, spread = 0.2, rnd: () => number = Math.random): number {
  return Math.round(baseMs * (1 - spread + 2 * spread * rnd()));
}
