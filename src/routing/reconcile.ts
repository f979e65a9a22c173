/**
 * The policy routing run: read the system and the state file (snapshot), plan the smallest set
 * of changes (plan.ts), run them (apply.ts) and record what we own (next-state.ts). What is ours
 * and when it may go is plan.ts's; removal without metadata is cleanup.ts's.
 */
import type { InstanceSummary } from '../../bridge/index.js';
import type { Config } from '../config.js';
import { desiredState, type DesiredState, type Skip } from './desired.js';
import { readActual, readGateways, type ActualState } from './actual.js';
import { writeState, type OwnedState } from './state.js';
import type { Change } from './change.js';
import { planDetailed, type PlanResult } from './plan.js';
import { applyPlan, type ApplyResult } from './apply.js';
import { nextState, sameState } from './next-state.js';
import { type RoutingEnv, resolveEnv, readCurrent } from './env.js';
import { flushOwned } from './cleanup.js';
import { routingMeta } from './metadata-input.js';
import { log } from '../util/log.js';

export interface ReconcileInput {
  summary: Pick<InstanceSummary, 'nics' | 'primary_mac'> & Partial<Pick<InstanceSummary, 'ports'>>;
  config: Config | Config['routing'];
  metadataComplete: boolean;
  dryRun?: boolean;
  env?: RoutingEnv;
}

export interface ReconcileResult {
  enabled: boolean;
  dryRun: boolean;
  desired: DesiredState | null;
  changes: Change[];
  applied: ApplyResult[];
  failed: ApplyResult[];
  /** Metadata values skipped as invalid and plan decisions not to act. */
  skipped: Skip[];
}

const routingOf = (c: ReconcileInput['config']): Config['routing'] => ('routing' in c ? c.routing : c);

export interface Snapshot {
  desired: DesiredState;
  actual: ActualState;
  owned: OwnedState;
  plan: PlanResult;
}

/** Reads system and state, computes desired and the plan; changes nothing. */
export async function snapshot(input: Omit<ReconcileInput, 'dryRun'>): Promise<Snapshot> {
  const env = resolveEnv(input.env);
  const routing = routingOf(input.config);
  const { actual, owned } = await readCurrent(env);
  // EC2's NIC metadata, or any datasource's generic ports in the same shape (metadata-input.ts).
  const meta = routingMeta(input.summary, actual);
  const metaMacs = new Set(Object.keys(meta.nics).map((m) => m.toLowerCase()));
  const ifnames = actual.links.filter((l) => metaMacs.has(l.mac)).map((l) => l.ifname);
  const { gateways, gateways6 } = await readGateways(ifnames, actual, env.leaseGateway);
  const desired = desiredState({
    nics: meta.nics,
    primaryMac: meta.primaryMac,
    links: actual.links,
    gateways: { ...gateways, ...meta.gateways },
    gateways6: { ...gateways6, ...meta.gateways6 },
    config: { table_base: routing.table_base, primary: routing.primary },
  });
  const plan = planDetailed(desired, actual, owned, { metadataComplete: input.metadataComplete });
  // A NIC whose numbers collide with a user's is not ours to record: from here on, the planned-for state.
  return { desired: plan.desired, actual, owned, plan };
}

/**
 * Reads links, gateways, addresses, rules and routes; computes desired from metadata; applies
 * the minimal plan (unless dryRun) and records what it added. Call under the apply lock.
 */
export async function reconcile(input: ReconcileInput): Promise<ReconcileResult> {
  const routing = routingOf(input.config);
  const dryRun = !!input.dryRun;
  if (!routing.enabled) {
    // Disabled: what we set up earlier goes, so no stale table outlives the setting.
    const f = await flushOwned({ env: input.env, dryRun });
    return { enabled: false, dryRun, desired: null, ...f, skipped: [{ what: 'routing', reason: 'disabled in config (routing.enabled: false)' }] };
  }
  // Resolved once: the snapshot, the apply and the re-read go through the same `ip`.
  const env = resolveEnv(input.env);
  const { ip, statePath, now } = env;
  const snap = await snapshot({ ...input, env });
  const { desired, owned } = snap;
  const changes = snap.plan.changes;
  const skipped = [...desired.skipped, ...snap.plan.notes];
  // Reported at every run (the user's table or rule stays where it is until they move it).
  for (const c of snap.plan.collisions) log('warn', 'policy routing collision: left alone', { kind: c.kind, number: c.number, ifname: c.ifname, found: c.found });
  if (dryRun || changes.length === 0) {
    // Keep the table map current even when nothing changes (e.g. first run after an upgrade).
    if (!dryRun) {
      const next = nextState(owned, desired, snap.actual, [], now());
      if (!sameState(next, owned)) await writeState(next, statePath);
    }
    return { enabled: true, dryRun, desired, changes, applied: [], failed: [], skipped };
  }
  // Record the NICs' tables before touching anything: a crash mid-apply leaves owned rules attributable.
  const pre: OwnedState = { ...owned, nics: { ...owned.nics } };
  for (const n of desired.nics) {
    const p = pre.nics[n.mac];
    if (!p) pre.nics[n.mac] = { ifname: n.ifname, table: n.table, priority: n.priority, rules: [], addresses: [], updated: now().toISOString() };
  }
  if (!sameState(pre, owned)) await writeState(pre, statePath);

  const results = await applyPlan(changes, ip);
  const added = results.filter((r) => r.status === 'ok' && r.change.kind === 'address' && r.change.op === 'add').map((r) => (r.change as Extract<Change, { kind: 'address' }>).address);
  const after = await readActual(ip);
  await writeState(nextState(pre, desired, after, added, now()), statePath);
  const failed = results.filter((r) => r.status === 'failed');
  if (changes.length) log('info', 'policy routing reconciled', { changes: changes.length, failed: failed.length });
  return { enabled: true, dryRun, desired, changes, applied: results.filter((r) => r.status !== 'failed'), failed, skipped };
}
