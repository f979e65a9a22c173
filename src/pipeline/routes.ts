/**
 * The routes stage: policy routing reconciled after the network config changed. A failure is
 * logged, never fails the event (the address works; only replies from other subnets suffer).
 */
import type { InstanceSummary } from '../../bridge/index.js';
import type { BatchContext } from './context.js';
import type { RoutingOutcome } from './deps.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';

export async function routesStage(ctx: BatchContext, summary: InstanceSummary, metadataComplete: boolean): Promise<RoutingOutcome | null> {
  try {
    // reconcile() logs what it changed; only failures need saying again, louder.
    const r = await ctx.deps.routing.reconcile(summary, metadataComplete);
    if (r.failed) log('warn', 'policy routing: some changes failed', { changes: r.changes, failed: r.failed });
    return r;
  } catch (e) {
    log('warn', 'policy routing reconcile failed', { error: oneLine(e) });
    return null;
  }
}
