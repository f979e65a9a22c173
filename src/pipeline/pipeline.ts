/**
 * The event pipeline, one for the one-shot worker and the daemon:
 *
 *   queue ─ take ─► gate (hotplug enabled?) ─► policies ─► coalesce ─► filter
 *         ─► remove stage (bring down, scrub, re-render without them)
 *         ─► add stage (crawl; await metadata with probes; configure; routes) ─► record ─► ack
 *
 * Events are acked only after they were handled (recorded), so a process killed with -9 leaves
 * them for the next one. Waiting for boot and holding the apply lock are the drivers' part
 * (pipeline/worker.ts blocks, the daemon reschedules); both call drainOnce() under the lock.
 */
import type { Bridge } from '../../bridge/index.js';
import { currentSummary } from '../../bridge/summary-memo.js';
import type { HotplugEvent } from '../events/event.js';
import { coalesce } from './coalesce.js';
import { isCandidate } from './filter.js';
import { enabledGate } from './gate.js';
import { dispatch, eventVars } from './policies.js';
import { newContext, recordEvent, type BatchContext } from './context.js';
import { withBridge, type PipelineDeps } from './deps.js';
import { removeStage } from './remove.js';
import { addStage } from './await-metadata.js';
import { routesStage } from './routes.js';

export type DrainOutcome = 'empty' | 'ok' | 'failed';

export class Pipeline {
  /** Whether the datasource answers cheap MAC probes; learned once, kept across batches. */
  private readonly probe = { works: true };

  constructor(readonly deps: PipelineDeps) {}

  /**
   * Take every queued event and handle them as one batch. If the bridge dies or hangs mid-batch it
   * is restarted and the batch re-run with what is still queued (nothing was acked); a bridge that
   * keeps failing throws, and the events stay queued.
   */
  async drainOnce(onClaim?: (events: HotplugEvent[]) => void): Promise<DrainOutcome> {
    // Nothing queued: no bridge needed (a one-shot worker then never starts Python).
    if ((await this.deps.queue.pending()) === 0) return 'empty';
    return withBridge(this.deps, 'batch', async (b) => {
      const claim = await this.deps.queue.take();
      if (!claim.events.length) return 'empty';
      onClaim?.(claim.events);
      return (await this.batch(b, claim.events)) ? 'ok' : 'failed';
    });
  }

  /** Handle one snapshot of the queue. Returns false if something failed. */
  async batch(b: Bridge, events: HotplugEvent[]): Promise<boolean> {
    const ctx = newContext(this.deps, this.probe);
    const { deps, cfg } = ctx;
    // For the gate and 'reconcile' policies; remembered from the last reply where the bridge keeps it.
    const summary = await currentSummary(b);
    const gate = enabledGate(summary);
    if (!gate.open) {
      for (const ev of events) await recordEvent(ctx, ev, 'skipped', gate.reason);
      await deps.queue.ack(events.map((e) => e.id));
      return true;
    }
    const handled = new Set<string>();
    const toApply: HotplugEvent[] = [];
    for (const ev of events) {
      const policy = cfg.events[ev.action];
      if (policy !== 'apply') {
        // Filtered events are never acted on, whatever the policy ('apply' ones are filtered after coalescing).
        const c = isCandidate(ev, cfg.filter);
        if (!c.ok) {
          await recordEvent(ctx, ev, 'ignored', c.reason);
          handled.add(ev.id);
          continue;
        }
      }
      const o = await dispatch(policy, {
        kind: ev.action,
        vars: eventVars(ev),
        apply: async () => {
          toApply.push(ev);
          return { ok: true, deferred: true };
        },
        reconcile: async () => {
          await routesStage(ctx, summary, false);
          return { ok: true, reason: `events.${ev.action} policy is reconcile: policy routing reconciled only` };
        },
      });
      if (o.deferred) continue;
      const reason = o.handler === 'run' ? `events.${ev.action} policy: ${o.reason}` : o.reason;
      await recordEvent(ctx, ev, !o.ok ? 'failed' : o.handler === 'ignore' ? 'ignored' : ev.action === 'add' ? 'configured' : 'removed', reason);
      handled.add(ev.id);
    }
    // A failed {run} is recorded as failed but, as before, does not fail the batch.
    const ok = await this.coalesced(ctx, b, toApply, handled, new Set(events.map((e) => e.id)));
    await deps.queue.ack(handled);
    return ok;
  }

  /** The 'apply' events: coalesce, filter, then the remove and add stages. */
  private async coalesced(ctx: BatchContext, b: Bridge, events: HotplugEvent[], handled: Set<string>, claimed: Set<string>): Promise<boolean> {
    if (!events.length) return true;
    const known = await ctx.deps.records.interfaces();
    const batch = coalesce(events, known);
    const kept = new Set([...batch.adds.values(), ...batch.removes.values()].map((e) => e.id));
    for (const id of batch.ids) if (!kept.has(id)) handled.add(id); // superseded within the batch
    const pick = async (evs: Iterable<HotplugEvent>): Promise<HotplugEvent[]> => {
      const ok: HotplugEvent[] = [];
      for (const ev of evs) {
        const c = isCandidate(ev, ctx.cfg.filter);
        if (c.ok) ok.push(ev);
        else {
          await recordEvent(ctx, ev, 'ignored', c.reason);
          handled.add(ev.id);
        }
      }
      return ok;
    };
    const removes = await pick(batch.removes.values());
    const adds = await pick(batch.adds.values());
    let ok = true;
    if (removes.length) {
      const r = await removeStage(ctx, b, removes, known);
      r.handled.forEach((id) => handled.add(id));
      ok &&= !r.failed;
    }
    if (adds.length) {
      const r = await addStage(ctx, b, adds, claimed);
      r.handled.forEach((id) => handled.add(id));
      ok &&= !r.failed;
    }
    return ok;
  }
}
