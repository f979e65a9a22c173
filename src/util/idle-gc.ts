/**
 * A full garbage collection once a long-lived process goes quiet after work: V8 keeps the heap a
 * batch grew to (a 16-NIC storm doubles the daemon's node PSS) until memory pressure, which an
 * idle daemon never sees. Needs node's --expose-gc (the daemon's flags have it); without it this
 * does nothing. Busy = more than BUSY_MS of CPU in a CHECK_MS interval; the collection comes with
 * the first interval after work that is not busy. Not "quiet" (a few ms): the idle daemon's own
 * probes, polls and routing watch take 5–40 ms per interval, so after a storm a quiet interval
 * could be many seconds away and the batch's heap stayed (the bench's churn lab saw node's PSS
 * 5 MB over its idle start). A collection that falls between two bursts of one storm costs a few
 * ms, and the first interval that is not busy after the next burst collects again.
 */
const CHECK_MS = 2000;
const BUSY_MS = 50;

/** One interval's decision: `dirty` = work happened since the last collection. Returns whether to collect now. */
export function idleGcStep(state: { dirty: boolean }, cpuMs: number): boolean {
  if (cpuMs > BUSY_MS) state.dirty = true;
  else if (state.dirty) {
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

/** How long after the end of a batch its collection waits (another batch within it restarts the wait). */
export const AFTER_WORK_MS = 1000;

/**
 * For work whose end is known (the daemon's batches): each call restarts a countdown, and when it
 * runs out while `idle()` says so, a full collection. The interval check above stays for the rest.
 */
export function gcAfterWork(idle: () => boolean, delayMs = AFTER_WORK_MS, gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc): () => void {
  if (typeof gc !== 'function') return () => {};
  let t: NodeJS.Timeout | undefined;
  return () => {
    clearTimeout(t);
    t = setTimeout(() => idle() && gc(), delayMs);
    t.unref();
  };
}
