import { expect } from 'chai';
import { retryUntil, backoffDelay, RetryBudgetExceeded, retryDefaults, retryOptionsFromConfig, type RetryOptions } from '../src/retry.js';

/** Fake clock: sleep advances time; fn may also spend time. */
function clock() {
  let t = 1000;
  const sleeps: number[] = [];
  return {
    sleeps,
    advance: (ms: number) => { t += ms; },
    opts: { now: () => t, sleep: async (ms: number) => { sleeps.push(ms); t += ms; } } satisfies Partial<RetryOptions>,
    get t() { return t; },
  };
}

const notDone = async () => ({ done: false, value: 0 });

describe('retryUntil', () => {
  it('returns at once when the first attempt is done, without sleeping', async () => {
    const c = clock();
    expect(await retryUntil(async () => ({ done: true, value: 'x' }), c.opts)).to.equal('x');
    expect(c.sleeps).to.deep.equal([]);
  });

  it('stops the moment done is true, with exponential delays (no jitter)', async () => {
    const c = clock();
    const seen: number[] = [];
    const v = await retryUntil(async (n) => { seen.push(n); return { done: n === 4, value: n * 10 }; },
      { ...c.opts, jitter: 'none', initialMs: 150, factor: 2 });
    expect(v).to.equal(40);
    expect(seen).to.deep.equal([1, 2, 3, 4]);
    expect(c.sleeps).to.deep.equal([150, 300, 600]);
  });

  it('caps single delays at maxMs', async () => {
    const c = clock();
    await retryUntil(async (n) => ({ done: n === 6, value: 0 }), { ...c.opts, jitter: 'none', initialMs: 150, maxMs: 500 });
    expect(c.sleeps).to.deep.equal([150, 300, 500, 500, 500]);
  });

  it('throws RetryBudgetExceeded with attempts and elapsed, never sleeping past the budget', async () => {
    const c = clock();
    let err: unknown;
    try {
      await retryUntil(notDone, { ...c.opts, jitter: 'none', initialMs: 150, budgetMs: 1000 });
    } catch (e) { err = e; }
    expect(err).to.be.instanceOf(RetryBudgetExceeded);
    const e = err as RetryBudgetExceeded;
    // 150 + 300 then 600 would overshoot: shortened to the 550 left, one last attempt at the deadline.
    expect(c.sleeps).to.deep.equal([150, 300, 550]);
    expect(e.attempts).to.equal(4);
    expect(e.elapsedMs).to.equal(1000);
    expect(e.budgetMs).to.equal(1000);
    expect(e.message).to.match(/4 attempts in 1000 ms/);
  });

  it('counts time spent inside fn against the budget', async () => {
    const c = clock();
    let attempts = 0;
    try {
      await retryUntil(async () => { attempts++; c.advance(400); return { done: false, value: 0 }; },
        { ...c.opts, jitter: 'none', initialMs: 100, budgetMs: 1000 });
      expect.fail('should throw');
    } catch (e) {
      expect(e).to.be.instanceOf(RetryBudgetExceeded);
    }
    // t=400 sleep 100, t=900 sleep 100 (only 100 left), t=1400: over budget.
    expect(c.sleeps).to.deep.equal([100, 100]);
    expect(attempts).to.equal(3);
  });

  it('with random jitter the delays stay within [0, cap] and the total within the budget', async () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const jitter of ['full', 'decorrelated'] as const) {
      const c = clock();
      await retryUntil(notDone, { ...c.opts, jitter, random, budgetMs: 60_000 }).catch((e) => expect(e).to.be.instanceOf(RetryBudgetExceeded));
      expect(Math.max(...c.sleeps)).to.be.at.most(retryDefaults.maxMs);
      expect(Math.min(...c.sleeps)).to.be.at.least(0);
      expect(c.sleeps.reduce((a, b) => a + b, 0)).to.be.closeTo(60_000, 1e-6);
      expect(c.sleeps.length).to.be.greaterThan(10);
    }
  });

  it('lets an exception from fn propagate without retrying', async () => {
    const c = clock();
    let n = 0;
    let err: unknown;
    try { await retryUntil(async () => { n++; throw new Error('boom'); }, c.opts); } catch (e) { err = e; }
    expect((err as Error).message).to.equal('boom');
    expect(n).to.equal(1);
  });

  it('reports each retry to onRetry', async () => {
    const c = clock();
    const calls: Array<{ attempt: number; delayMs: number }> = [];
    await retryUntil(async (n) => ({ done: n === 3, value: 0 }), {
      ...c.opts, jitter: 'none', initialMs: 200, onRetry: ({ attempt, delayMs }) => calls.push({ attempt, delayMs }),
    });
    expect(calls).to.deep.equal([{ attempt: 1, delayMs: 200 }, { attempt: 2, delayMs: 400 }]);
  });

  it('works with the real clock and sleep', async () => {
    const t0 = Date.now();
    const v = await retryUntil(async (n) => ({ done: n === 3, value: 'ok' }), { initialMs: 10, jitter: 'none' });
    expect(v).to.equal('ok');
    expect(Date.now() - t0).to.be.within(25, 1000);
  });
});

describe('backoffDelay', () => {
  const o = { initialMs: 100, maxMs: 1000, factor: 2 };
  it('full jitter is uniform in [0, base]', () => {
    expect(backoffDelay(3, 0, { ...o, jitter: 'full' }, () => 0.5)).to.equal(200);
    expect(backoffDelay(3, 0, { ...o, jitter: 'full' }, () => 0)).to.equal(0);
    expect(backoffDelay(10, 0, { ...o, jitter: 'full' }, () => 0.999)).to.be.below(1000);
  });
  it('decorrelated jitter is in [initial, prev*3] and capped', () => {
    expect(backoffDelay(2, 400, { ...o, jitter: 'decorrelated' }, () => 0)).to.equal(100);
    expect(backoffDelay(2, 200, { ...o, jitter: 'decorrelated' }, () => 1)).to.equal(600);
    expect(backoffDelay(5, 800, { ...o, jitter: 'decorrelated' }, () => 1)).to.equal(1000);
    expect(backoffDelay(1, 0, { ...o, jitter: 'decorrelated' }, () => 1)).to.equal(300);
  });
  it('defaults start well under a second and cap at 5 s within 60 s', () => {
    expect(retryDefaults).to.include({ initialMs: 150, maxMs: 5000, budgetMs: 60_000, factor: 2 });
    expect(retryOptionsFromConfig({ budget_seconds: 30, initial_ms: 100, max_ms: 2000 })).to.deep.equal({ budgetMs: 30_000, initialMs: 100, maxMs: 2000 });
  });
});
