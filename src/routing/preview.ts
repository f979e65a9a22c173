/** What a reconcile would do now, changing nothing (for `apply --dry-run`). */
import type { Config } from '../config.js';
import type { InstanceSummary } from '../../bridge/index.js';
import { snapshot } from './reconcile.js';
import { describeChange, type Change } from './change.js';
import type { RoutingEnv } from './env.js';

export interface RoutesPreview {
  enabled: boolean;
  /** Changes a reconcile would make now (adds, replaces and deletes). */
  changes: Change[];
  /** One `ip …` line per change, in order. */
  lines: string[];
}

/**
 * For `apply --dry-run`: the rules, routes and addresses a reconcile would add (or remove)
 * with this summary, changing nothing. A NIC not yet up or still without its DHCP address
 * shows fewer changes than the reconcile after the real apply will make.
 */
export async function previewRoutes(summary: Pick<InstanceSummary, 'nics' | 'primary_mac'> & Partial<Pick<InstanceSummary, 'ports'>>, config: Config, env?: RoutingEnv): Promise<RoutesPreview> {
  if (!config.routing.enabled) return { enabled: false, changes: [], lines: [] };
  const s = await snapshot({ summary, config, metadataComplete: true, env });
  return { enabled: true, changes: s.plan.changes, lines: s.plan.changes.map(describeChange) };
}
