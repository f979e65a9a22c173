/**
 * The routes stage: policy routing reconciled after the network config changed. A failure is
 * logged, never fails the event (the address works; only replies from other subnets suffer).
 * A NIC with IPv6 in metadata but no router advertisement yet gets a bounded wait for one and a
 * second reconcile (its IPv6 table needs the RA's router; see routing/ra-wait.ts).
 */
import type { InstanceSummary } from '../../bridge/index.js';
import type { BatchContext } from './context.js';
import type { RoutingOutcome } from './deps.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';

export async function routesStage(ctx: BatchContext, summary: InstanceSummary, metadataComplete: boolean): Promise<RoutingOutcome | null> {
  try {
    // reconcile() logs what it changed; only failures need saying again, louder.
    let r = await ctx.deps.routing.reconcile(summary, metadataComplete);
    const waiting = r.awaitingRouter6 ?? [];
    if (waiting.length && ctx.deps.routing.waitRouters6) {
      const still = await ctx.deps.routing.waitRouters6(waiting);
      if (still.length) log('warn', 'no IPv6 router advertisement yet: IPv6 routes of these NICs wait for the next run', { ifnames: still.join(' ') });
      if (still.length < waiting.length) r = await ctx.deps.routing.reconcile(summary, metadataComplete);
    }
    if (r.failed) log('warn', 'policy routing: some changes failed', { changes: r.changes, failed: r.failed });
    return r;
  } catch (e) {
    log('warn', 'policy routing reconcile failed', { error: oneLine(e) });
    return null;
  }
}
