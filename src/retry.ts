/**
 * Exponential backoff with jitter inside a total time budget: used to poll for state that becomes
 * true "soon" (a new NIC showing up in instance metadata). The first retry comes well under a
 * second because that is the common case; the cap keeps late polls frequent enough.
 * Clock, sleep and randomness are injectable so tests are deterministic.
 */

export type Jitter = 'none' | 'full' | 'decorrelated';

export interface RetryOptions {
  /** Total time allowed, measured from the first attempt. */
  budgetMs: number;
  /** Base of the first delay. */
  initialMs: number;
  /** No single delay exceeds this. */
  maxMs: number;
  /** Growth per attempt (for 'decorrelated', the upper bound is previous delay × factor × 1.5). */
  factor: number;
  /** 'full': uniform in [0, base]; 'decorrelated': uniform in [initial, prev×factor×1.5] (AWS style); 'none': base. */
  jitter: Jitter;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** Returns [0, 1). */
  random?: () => number;
  onRetry?: (info: { attempt: number; delayMs: number; elapsedMs: number }) => void;
}

export const retryDefaults = {
  budgetMs: 60_000,
  initialMs: 150,
  maxMs: 5_000,
  factor: 2,
  jitter: 'full',
} as const satisfies Omit<RetryOptions, 'sleep' | 'now' | 'random' | 'onRetry'>;

export class RetryBudgetExceeded extends Error {
  constructor(
    readonly attempts: number,
    readonly elapsedMs: number,
    readonly budgetMs: number,
  ) {
    super(`gave up after ${attempts} attempts in ${elapsedMs} ms (budget ${budgetMs} ms)`);
    this.name = 'RetryBudgetExceeded';
  }
}

/** Delay before retry number `attempt` (1 = after the first failed attempt); `prevMs` is the last delay. */
export function backoffDelay(
  attempt: number,
  prevMs: number,
  o: Pick<RetryOptions, 'initialMs' | 'maxMs' | 'factor' | 'jitter'>,
  random: () => number = Math.random,
): number {
  const base = Math.min(o.maxMs, o.initialMs * o.factor ** (attempt - 1));
  switch (o.jitter) {
    case 'none':
      return base;
    case 'full':
      return random() * base;
    case 'decorrelated': {
      const hi = Math.max(o.initialMs, (prevMs || o.initialMs) * o.factor * 1.5);
      return Math.min(o.maxMs, o.initialMs + random() * (hi - o.initialMs));
    }
  }
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Calls fn(1), fn(2), … until it reports done, sleeping with backoff in between, and returns its
 * value. Never sleeps past the budget's end: the last sleep is shortened so one final attempt runs
 * right at the deadline, then RetryBudgetExceeded is thrown. An exception from fn is not retried
 * (fn decides what is transient by returning done: false).
 */
export async function retryUntil<T>(
  fn: (attempt: number) => Promise<{ done: boolean; value: T }>,
  opts: Partial<RetryOptions> = {},
): Promise<T> {
  const o = { ...retryDefaults, ...opts };
  const now = o.now ?? (() => performance.now());
  const sleep = o.sleep ?? realSleep;
  const random = o.random ?? Math.random;
  const start = now();
  let prev = 0;
  for (let attempt = 1; ; attempt++) {
    const r = await fn(attempt);
    if (r.done) return r.value;
    const elapsed = now() - start;
    const left = o.budgetMs - elapsed;
    if (left <= 0) throw new RetryBudgetExceeded(attempt, Math.round(elapsed), o.budgetMs);
    const delay = Math.min(left, backoffDelay(attempt, prev, o, random));
    prev = delay;
    o.onRetry?.({ attempt, delayMs: Math.round(delay), elapsedMs: Math.round(elapsed) });
    await sleep(delay);
  }
}

/** Maps the config file's `retry:` section to options. */
export function retryOptionsFromConfig(c: { budget_seconds: number; initial_ms: number; max_ms: number }): Pick<RetryOptions, 'budgetMs' | 'initialMs' | 'maxMs'> {
  return { budgetMs: c.budget_seconds * 1000, initialMs: c.initial_ms, maxMs: c.max_ms };
}
