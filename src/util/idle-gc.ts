/**
 * A full garbage collection once a long-lived process goes quiet after work: V8 keeps the heap a
 * batch grew to (a 16-NIC storm doubles the daemon's node PSS) until memory pressure, which an
 * idle daemon never sees. Needs node's --expose-gc (the daemon's flags have it); without it this
 * does nothing. Busy = more than BUSY_MS of CPU in a CHECK_MS interval; quiet = less than QUIET_MS.
 */
const CHECK_MS = 2000;
const BUSY_MS = 50;
const QUIET_MS = 10;

/** One interval's decision: `dirty` = work happened since the last collection. Returns whether to collect now. */
export function idleGcStep(state: { dirty: boolean }, cpuMs: number): boolean {
  if (cpuMs > BUSY_MS) state.dirty = true;
  else if (state.dirty && cpuMs < QUIET_MS) {
    state.dirty = false;
    return true;
  }
  return false;
}

export function gcWhenIdle(gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc): void {
  if (typeof gc !== 'function') return;
  let last = process.cpuUsage();
  const state = { dirty: false };
  const t = setInterval(() => {
    const d = process.cpuUsage(last);
    last = process.cpuUsage();
    if (idleGcStep(state, (d.user + d.system) / 1000)) gc();
  }, CHECK_MS);
  t.unref();
}
