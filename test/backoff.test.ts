/** The project's one backoff policy (src/util/backoff.ts): exponential, capped, full jitter. */
import { expect } from 'chai';
import { backoffDelay, Backoff } from '../src/util/backoff.js';

describe('backoff: exponential, capped, full jitter', () => {
  const p = { initialMs: 100, maxMs: 1000 };
  it('grows by the factor from initialMs, uniform in [0, base]', () => {
    expect(backoffDelay(1, p, () => 1)).to.equal(100);
    expect(backoffDelay(3, p, () => 0.5)).to.equal(200);
    expect(backoffDelay(3, p, () => 0)).to.equal(0);
    expect(backoffDelay(2, { ...p, factor: 3 }, () => 1)).to.equal(300);
  });
  it('never exceeds the cap, however many attempts', () => {
    expect(backoffDelay(10, p, () => 0.999)).to.be.below(1000);
    expect(backoffDelay(1000, p, () => 1)).to.equal(1000);
    for (let i = 0; i < 200; i++) expect(backoffDelay(1 + (i % 12), p)).to.be.within(0, 1000);
  });
  it('Backoff counts attempts until reset', () => {
    const b = new Backoff(p, () => 1);
    expect([b.next(), b.next(), b.next()]).to.deep.equal([100, 200, 400]);
    b.reset();
    expect(b.next()).to.equal(100);
  });
});
