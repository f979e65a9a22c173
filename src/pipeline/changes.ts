/**
 * Changes that come with no queued device event, through the same policies and stages: metadata
 * that changed under a running instance (the daemon's poller), links going down or up (the kernel
 * watch), and policy routing lost without a link event (the routing watch). Each takes the apply
 * lock (deps.exclusive) only when it is about to change the system.
 */
import type { Bridge, InstanceSummary } from '../../bridge/index.js';
import { currentSummary, knownSummary } from '../../bridge/summary-memo.js';
import { log, since } from '../util/log.js';
import { withBridge, type PipelineDeps } from './deps.js';
import { dispatch, type PolicyOutcome } from './policies.js';
import { enabledGate } from './gate.js';
import { newContext } from './context.js';
import { configure, type NetConfigView } from './configure.js';
import { applyAll } from './apply-all.js';
import { deviceIndexOf } from './await-metadata.js';
import { oneLine } from '../util/errors.js';

/** Exclusive access for changes (the daemon: the apply lock, then a look at the queue). */
export type Exclusive = <T>(fn: () => Promise<T>) => Promise<T>;

export interface MetadataOutcome {
  result: 'applied' | 'ignored' | 'failed' | 'skipped';
  reason?: string;
  brought_up?: string[];
  routing_changes?: number;
  /** The summary that is now the baseline (unset: keep the old one and see the change again). */
  accepted?: InstanceSummary;
}

/**
 * The metadata to act on under the lock: the poller's read `r` while the bridge still holds it (its
 * remembered summary is the very one of `r`, summary-memo.ts), so one crawl per change. Otherwise
 * something re-opened or re-read the datasource since the poll (a one-shot worker, `hotplug apply`
 * or a CLI refresh wrote obj.pkl and the manager re-opened it; a bridge restart): read again, so
 * nothing older than what that writer stored is rendered or stored over it.
 */
async function underLock<V extends NetConfigView & { summary: InstanceSummary }>(b: Bridge, r: V): Promise<NetConfigView & { summary: InstanceSummary }> {
  if (knownSummary(b) === r.summary) return r;
  const t0 = performance.now();
  const net = await b.refreshNetwork(2);
  log('info', 'metadata change: the datasource changed since the poll (another writer); network metadata read again under the lock', { event: 'metadata_change', duration_ms: since(t0) });
  return net.supported ? net : r;
}

/**
 * Metadata `r` differs from what the daemon last acted on (`before`). 'apply' renders everything
 * and brings up only NICs new in metadata that are present here and not ours yet; 'apply' and
 * 'reconcile' then reconcile routing with the (complete) fresh metadata.
 */
export async function metadataChanged(
  deps: PipelineDeps,
  exclusive: Exclusive,
  r: NetConfigView & { summary: InstanceSummary },
  before: InstanceSummary | undefined,
  change: string,
): Promise<MetadataOutcome> {
  const gate = enabledGate(r.summary);
  if (!gate.open) return { result: 'skipped', reason: gate.reason, accepted: r.summary };
  const policy = deps.config().events.metadata_change;
  const act = (apply: boolean) => async (): Promise<Omit<PolicyOutcome, 'handler'> & { broughtUp: string[]; summary: InstanceSummary }> =>
    exclusive(() =>
      withBridge(deps, 'metadata change', async (b) => {
        const cur = await underLock(b, r);
        let broughtUp: string[] = [];
        if (apply) {
          const beforeMacs = new Set(before?.macs ?? []);
          const present = await deps.links.present();
          const knownMacs = new Set(Object.values(await deps.records.interfaces()).map((k) => k.mac));
          const fresh = cur.interfaces.filter((i) => i.mac && !beforeMacs.has(i.mac) && !knownMacs.has(i.mac) && present.has(i.mac));
          broughtUp = fresh.map((i) => i.name);
          const failed = await configure(newContext(deps, { works: true }), b, cur, { persist: true, bringUp: broughtUp });
          for (const i of fresh) {
            if (failed.includes(i.name)) continue;
            await deps.records.remember(i.name, { mac: i.mac!, addedAt: Date.now(), deviceNumber: deviceIndexOf(cur.summary, i.mac!) });
          }
          if (failed.length) throw new Error(`the network activator failed to bring up ${failed.join(', ')}`);
        }
        const rt = await deps.routing.reconcile(cur.summary, true);
        if (rt.failed) throw new Error(`policy routing: ${rt.failed} change(s) failed`);
        return { ok: true, routingChanges: rt.changes, broughtUp, summary: cur.summary };
      }),
    );
  let done: Awaited<ReturnType<ReturnType<typeof act>>> | undefined;
  const o = await dispatch(policy, {
    kind: 'metadata_change',
    vars: { HOTPLUG_EVENT: 'metadata_change', HOTPLUG_CHANGE: change },
    apply: async () => (done = await act(true)()),
    reconcile: async () => (done = await act(false)()),
  }).catch((e: unknown): PolicyOutcome => ({ handler: 'apply', ok: false, reason: oneLine(e) }));
  if (o.handler === 'ignore') return { result: 'ignored', accepted: r.summary };
  if (o.handler === 'run') return o.ok ? { result: 'applied', reason: o.reason, accepted: r.summary } : { result: 'failed', reason: o.reason };
  if (!o.ok || !done) return { result: 'failed', reason: o.reason };
  return { result: 'applied', brought_up: done.broughtUp, routing_changes: done.routingChanges, accepted: done.summary };
}

export type LinkResult = 'reconciled' | 'applied' | 'ignored' | 'ran' | 'failed';

/** Links that went down or up (not by our own doing); `report` is called once per link. */
export async function linksChanged(
  deps: PipelineDeps,
  exclusive: Exclusive,
  changes: { ifname: string; up: boolean }[],
  report: (ifname: string, up: boolean, result: LinkResult, reason?: string, routingChanges?: number) => void,
): Promise<void> {
  const policy = deps.config().events.link_down;
  const groupJob = {
    kind: 'link_down' as const,
    vars: { HOTPLUG_EVENT: 'link_down' },
    apply: () =>
      exclusive(() =>
        withBridge(deps, 'link reconcile', async (b) => {
          await applyAll(deps, b, { refresh: false, dryRun: false });
          return { ok: true };
        }),
      ),
    // Cached metadata, never complete enough to delete for a present NIC.
    reconcile: () =>
      exclusive(() =>
        withBridge(deps, 'link reconcile', async (b) => {
          const r = await deps.routing.reconcile(await currentSummary(b), false);
          return { ok: !r.failed, reason: r.failed ? `${r.failed} routing change(s) failed` : undefined, routingChanges: r.changes };
        }),
      ),
  };
  if (typeof policy === 'object') {
    // A command per link, with the link in its environment.
    for (const c of changes) {
      const o = await dispatch(policy, { ...groupJob, vars: { HOTPLUG_EVENT: 'link_down', HOTPLUG_IFACE: c.ifname, HOTPLUG_STATE: c.up ? 'up' : 'down' } });
      report(c.ifname, c.up, o.ok ? 'ran' : 'failed', o.reason);
    }
    return;
  }
  let o: PolicyOutcome;
  try {
    o = await dispatch(policy, groupJob);
  } catch (e) {
    o = { handler: 'apply', ok: false, reason: oneLine(e) };
  }
  const result: LinkResult = !o.ok ? 'failed' : o.handler === 'ignore' ? 'ignored' : o.handler === 'apply' ? 'applied' : 'reconciled';
  for (const c of changes) report(c.ifname, c.up, result, o.handler === 'ignore' ? undefined : o.reason, o.routingChanges);
}

/** Policy routing lost without a link event: reconcile from cached metadata (deletes nothing for a present NIC). */
export async function repairRouting(deps: PipelineDeps, exclusive: Exclusive): Promise<{ changes: number; failed: number }> {
  return exclusive(() => withBridge(deps, 'policy routing repair', async (b) => deps.routing.reconcile(await currentSummary(b), false)));
}
