/** util/idle-gc: one full collection after work, once the process is quiet again; none while idle or busy. */
import { expect } from 'chai';
import { idleGcStep } from '../src/util/idle-gc.js';

describe('idle gc (the daemon gives its batch heap back when quiet)', () => {
  it('collects once after busy → quiet, not while busy, not again while idle, and again after new work', () => {
    const st = { dirty: false };
    const run = (cpu: number[]) => cpu.map((ms) => idleGcStep(st, ms));
    expect(run([0, 5, 10]), 'idle from the start').to.deep.equal([false, false, false]);
    expect(run([400, 250, 50]), 'busy, then in between').to.deep.equal([false, false, false]);
    expect(run([3, 2, 1]), 'quiet: once').to.deep.equal([true, false, false]);
    expect(run([150, 0]), 'new work').to.deep.equal([false, true]);
  });
});
