/**
 * The daemon's job queue: one job at a time, highest priority first (the queue drain before
 * anything else). A kind other than 'request' and 'url' is queued at most once: a second "drain" while one
 * is waiting would find nothing more to do.
 */
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';

export type JobKind = 'drain' | 'request' | 'links' | 'routing' | 'poll' | 'url' | 'bridge';
const PRIORITY: Record<JobKind, number> = { drain: 0, bridge: 1, request: 2, links: 3, routing: 3, poll: 4, url: 4 };
/** Kinds whose every job counts (each is someone's request or its own source's change). */
const EVERY: readonly JobKind[] = ['request', 'url'];

interface Job {
  kind: JobKind;
  what: string;
  run: () => Promise<void>;
  reject?: (e: Error) => void;
}

export class JobQueue {
  private jobs: Job[] = [];
  private pumping: Promise<void> | null = null;
  private closed = false;
  /** The job running now (its description), or null. */
  current: string | null = null;
  /** Called when the queue goes busy or idle. */
  onState: ((busy: boolean) => void) | undefined;

  get waiting(): number {
    return this.jobs.length;
  }

  get busy(): boolean {
    return this.pumping !== null;
  }

  schedule(kind: JobKind, what: string, run: () => Promise<void>, reject?: (e: Error) => void): void {
    if (this.closed) {
      reject?.(new Error('daemon stopping'));
      return;
    }
    if (!EVERY.includes(kind) && this.jobs.some((j) => j.kind === kind)) return; // already due
    this.jobs.push({ kind, what, run, reject });
    this.pump();
  }

  /** A job whose result the caller awaits (socket requests). */
  request<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => this.schedule('request', what, () => fn().then(resolve, reject), reject));
  }

  /** Refuse new jobs, fail the waiting ones, and wait for the running one. */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.jobs) j.reject?.(new Error('daemon stopping'));
    this.jobs = [];
    await this.pumping;
  }

  private pump(): void {
    if (this.pumping) return;
    this.onState?.(true);
    this.pumping = (async () => {
      while (this.jobs.length && !this.closed) {
        this.jobs.sort((a, b) => PRIORITY[a.kind] - PRIORITY[b.kind]);
        const job = this.jobs.shift()!;
        this.current = job.what;
        try {
          await job.run();
        } catch (e) {
          log('error', `${job.what} failed`, { error: oneLine(e) });
        }
        this.current = null;
      }
      this.pumping = null;
      this.onState?.(false);
    })();
  }
}
