/** util/idle-gc: one full collection after work, at the first interval that is not busy; none while idle or busy. */
import { expect } from 'chai';
import { gcAfterWork, idleGcStep } from '../src/util/idle-gc.js';

describe('idle gc (the daemon gives its batch heap back when quiet)', () => {
  it('collects once after busy → not busy, not while busy, not again while idle, and again after new work', () => {
    const st = { dirty: false };
    const run = (cpu: number[]) => cpu.map((ms) => idleGcStep(st, ms));
    expect(run([0, 5, 40]), 'idle from the start (the idle daemon\'s own probes take up to ~40 ms)').to.deep.equal([false, false, false]);
    expect(run([400, 250, 51]), 'busy').to.deep.equal([false, false, false]);
    expect(run([40, 20, 1]), 'not busy any more: once, even when not quiet').to.deep.equal([true, false, false]);
    expect(run([150, 0, 0]), 'new work').to.deep.equal([false, true, false]);
  });

  it('after work: one collection once the countdown runs out (each call restarts it), none while something runs', async () => {
    let n = 0;
    let idle = true;
    const after = gcAfterWork(() => idle, 300, () => n++);
    after();
    await new Promise((r) => setTimeout(r, 100));
    after(); // a second batch within the wait
    await new Promise((r) => setTimeout(r, 250));
    expect(n, 'restarted, not yet').to.equal(0);
    await new Promise((r) => setTimeout(r, 400));
    expect(n, 'once').to.equal(1);
    idle = false;
    after();
    await new Promise((r) => setTimeout(r, 500));
    expect(n, 'busy when it ran out').to.equal(1);
  });
});
