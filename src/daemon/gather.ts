/**
 * Gathering a NIC storm into one batch, with the batch's crawl overlapping the wait. A storm's NICs
 * appear in the kernel at once, but their udev programs queue them over ~100 ms on a busy machine:
 * the daemon waits (at most GATHER_MAX_MS) while links the kernel just reported are not queued yet,
 * so the storm is one batch (one crawl, one apply, one bring-up) instead of two. The network
 * metadata is read meanwhile (Python at the daemon's nice value, beside udev and the hooks), and the
 * batch's first crawl takes that read (pipeline/await-metadata.ts) while the bridge still holds it:
 * nothing re-read or re-opened the datasource since (summary-memo.ts), else it crawls as before.
 * A read older than the links is still safe: a MAC it lacks is waited for as if metadata lagged.
 */
import type { HotplugEvent } from '../events/event.js';
import { list } from '../events/queue.js';
import type { NetworkRead } from '../pipeline/deps.js';

const GATHER_MAX_MS = 200;
const GATHER_POLL_MS = 10;
/** A read not taken by the batch it was made for is not offered to a later one. */
const PREFETCH_TTL_MS = 2_000;

export interface GatherHost {
  stopping(): boolean;
  /** How many links the kernel reported whose udev event is not among `queued` yet. */
  awaiting(queued: readonly HotplugEvent[]): number;
  /** The network metadata read (bridge refreshNetwork); a failure is the batch's to see. */
  read(): Promise<NetworkRead>;
}

export class StormGather {
  private prefetch: { at: number; read: Promise<NetworkRead | undefined> } | undefined;

  constructor(private readonly host: GatherHost) {}

  /** Waits while the kernel's new links are not queued yet; starts the read if it waits at all, and returns once it is done. */
  async gather(): Promise<void> {
    this.prefetch = undefined;
    const end = Date.now() + GATHER_MAX_MS;
    const seen = new Map<string, HotplugEvent>(); // each queue file read once, not every 10 ms
    while (!this.host.stopping() && Date.now() < end && this.host.awaiting(await list(undefined, seen)) > 0) {
      this.prefetch ??= { at: Date.now(), read: this.host.read().catch(() => undefined) };
      await new Promise((r) => setTimeout(r, GATHER_POLL_MS));
    }
    // The batch's first bridge call must come after the read: one made while it is in flight (the
    // batch's summary) would be answered after it, and the remembered summary would no longer be
    // the read's, so the read would be thrown away and the network crawled again.
    await this.prefetch?.read;
  }

  /** The read started by the last gather (once), if fresh. */
  take(): Promise<NetworkRead | undefined> {
    const p = this.prefetch;
    this.prefetch = undefined;
    return p && Date.now() - p.at <= PREFETCH_TTL_MS ? p.read : Promise.resolve(undefined);
  }
}
