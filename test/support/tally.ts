/**
 * What a reliability test expected and what it observed, so that "lost", "faults injected" and
 * "inputs rejected" are computed, never written down: an event is lost when the convergence check
 * that follows it finds its NIC differing from metadata; a fault counts only when the metadata
 * service reports it injected; an input counts as rejected only once its refusal was seen. An
 * event no convergence check ever looked at leaves "lost" not measured (null).
 */
import type { Converged } from './harness.js';

/** True when a difference line of compareState names this interface (eth1 is not eth10). */
export const mentions = (diff: string, ifname: string) => new RegExp(`(^|[^\\w])${ifname.replace(/[^\w]/g, '\\$&')}([^\\w]|$)`).test(diff);

export class Tally {
  events = 0;
  faults = 0;
  rejected = 0;
  private lostSoFar = 0;
  private pending: string[] = [];

  /** An event whose effect on `ifname` the next convergence check must find. */
  event(ifname: string): void {
    this.events++;
    this.pending.push(ifname);
  }

  /** A fault, counted when the metadata service's counter says it was served (`injected` > 0). */
  fault(injected: number): void {
    if (injected > 0) this.faults++;
  }

  /** An input whose refusal was observed (`seen`); one not refused is not counted. */
  reject(seen: boolean, n = 1): void {
    if (seen) this.rejected += n;
  }

  /**
   * A convergence check: every pending event whose NIC differs from metadata is lost; differences
   * that name none of them still mean some effect is missing (at least one lost).
   */
  settle(c: Pick<Converged, 'diffs'>): void {
    const bad = this.pending.filter((n) => c.diffs.some((d) => mentions(d, n)));
    this.lostSoFar += c.diffs.length ? Math.max(1, bad.length) : 0;
    this.pending = [];
  }

  /** Lost events, or null when some event was never checked (its test stopped before its check). */
  get lost(): number | null {
    return this.pending.length ? null : this.lostSoFar;
  }

  /** Events never checked (shown next to a "not measured" lost). */
  get unchecked(): number {
    return this.pending.length;
  }
}
