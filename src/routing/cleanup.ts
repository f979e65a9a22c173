/**
 * Removal without metadata: one NIC's rules, routes and recorded addresses at hot-unplug
 * (removeInterface), or all the rules and routes we own at uninstall or when routing is
 * disabled (flushOwned). Only protocol-199 rules and routes and recorded addresses are touched.
 */
import type { ActualState, ActualRule, ActualRoute } from './actual.js';
import { ROUTING_PROTO, writeState, ruleKey } from './state.js';
import { type Change, sortChanges, ruleId } from './change.js';
import { applyPlan, type ApplyResult } from './apply.js';
import { type RoutingEnv, type ResolvedEnv, resolveEnv, readCurrent } from './env.js';
import { log } from '../util/log.js';

export interface CleanupResult {
  changes: Change[];
  applied: ApplyResult[];
  failed: ApplyResult[];
}

type Owner = { mac: string | null; ifname: string | null };

/** Which of our rules and routes to delete, whose they are, and why. */
interface DeleteSelection {
  rule(r: ActualRule): boolean;
  route(r: ActualRoute): boolean;
  ruleOwner(r: ActualRule): Owner;
  routeOwner(r: ActualRoute): Owner;
  reason: string;
}

/**
 * Deletes for the rules and routes that are ours (protocol 199: a rule with nothing but
 * from/lookup/priority, a plain route through a device) and that `sel` picks, in the order `ip`
 * listed them (runDeletes sorts).
 */
function ownedDeletes(actual: ActualState, sel: DeleteSelection): Change[] {
  const changes: Change[] = [];
  for (const r of actual.rules) {
    if (r.protocol !== ROUTING_PROTO || r.table === null || !sel.rule(r)) continue;
    if (r.extra && !isMainRule(r)) continue;
    const rule = { family: r.family, from: r.from, ...(r.to !== undefined ? { to: r.to } : {}), table: r.table, priority: r.priority, ...(r.suppress !== undefined ? { suppressPrefixlength: r.suppress } : {}) };
    changes.push({ kind: 'rule', op: 'del', rule, ...sel.ruleOwner(r), reason: sel.reason });
  }
  for (const r of actual.routes) {
    if (r.protocol !== ROUTING_PROTO || !r.plain || !r.dev || !sel.route(r)) continue;
    changes.push({ kind: 'route', op: 'del', route: { family: r.family, table: r.table, dst: r.dst, gateway: r.gateway, dev: r.dev }, ...sel.routeOwner(r), reason: sel.reason });
  }
  return changes;
}

/** Our `lookup main suppress_prefixlength N` rule (protocol 199, nothing else besides). */
const isMainRule = (r: ActualRule) => r.protocol === ROUTING_PROTO && r.from === 'all' && r.suppress !== undefined && r.table !== null;
/** Our per-NIC `from X lookup T` rules. */
const isNicRule = (r: ActualRule) => r.protocol === ROUTING_PROTO && !r.extra && r.from !== 'all' && r.table !== null;

/** Deletes of our main-table rules of the families where no per-NIC rule of ours is left after `changes`. */
function orphanMainRules(actual: ActualState, changes: Change[], reason: string): Change[] {
  const gone = new Set(changes.map((c) => (c.kind === 'rule' ? ruleId(c.rule) : '')));
  const left = (f: number) => actual.rules.some((r) => r.family === f && isNicRule(r) && !gone.has(ruleId(r)));
  return actual.rules
    .filter((r) => isMainRule(r) && !left(r.family))
    .map((r) => ({ kind: 'rule' as const, op: 'del' as const, rule: { family: r.family, from: r.from, table: r.table!, priority: r.priority, suppressPrefixlength: r.suppress }, mac: null, ifname: null, reason }));
}

/** Sorts and (unless dryRun) runs the deletes. */
async function runDeletes(changes: Change[], env: ResolvedEnv, dryRun: boolean | undefined): Promise<CleanupResult> {
  const sorted = sortChanges(changes);
  if (dryRun) return { changes: sorted, applied: [], failed: [] };
  const results = await applyPlan(sorted, env.ip);
  return { changes: sorted, applied: results.filter((r) => r.status !== 'failed'), failed: results.filter((r) => r.status === 'failed') };
}

/**
 * Removes everything we own for one NIC (by interface name as recorded, or MAC): its rules
 * (by recorded sources in its table), its table's routes through it, its recorded addresses.
 * For hot-unplug, after the device is gone (routes and addresses usually went with it).
 */
export async function removeInterface(ifnameOrMac: string, opts: { env?: RoutingEnv; dryRun?: boolean } = {}): Promise<CleanupResult> {
  const env = resolveEnv(opts.env);
  const { actual, owned } = await readCurrent(env);
  const key = ifnameOrMac.toLowerCase();
  const entries = Object.entries(owned.nics).filter(([mac, n]) => mac === key || n.ifname === ifnameOrMac);
  const changes: Change[] = [];
  for (const [mac, n] of entries) {
    const link = actual.links.find((l) => l.mac === mac && !l.stacked) ?? actual.links.find((l) => l.mac === mac);
    const dev = link?.ifname ?? null;
    // Another present NIC recorded with the same table (number reused): only our recorded sources go.
    const shared = Object.entries(owned.nics).some(([m, o]) => m !== mac && o.table === n.table && actual.links.some((l) => l.mac === m));
    // Routes through the device (gone with it, usually). If its old name now belongs to another
    // device, routes through that name are the other device's.
    const routeDev = dev ?? (actual.links.some((l) => l.ifname === n.ifname) ? null : n.ifname);
    changes.push(
      ...ownedDeletes(actual, {
        rule: (r) => isNicRule(r) && r.table === n.table && (!shared || n.rules.includes(ruleKey(r.family, r.from))),
        route: (r) => r.table === n.table && routeDev !== null && r.dev === routeDev,
        ruleOwner: () => ({ mac, ifname: n.ifname }),
        routeOwner: (r) => ({ mac, ifname: r.dev ?? null }),
        reason: 'interface removed',
      }),
    );
    // Other NICs' cross-subnet rules towards this NIC's subnet (its rule sources that are networks).
    const subnets = new Set(n.rules.filter((k) => !/\/(32|128)$/.test(k)));
    changes.push(
      ...ownedDeletes(actual, {
        rule: (r) => isNicRule(r) && r.to !== undefined && r.table !== n.table && subnets.has(ruleKey(r.family, r.to)),
        route: () => false,
        ruleOwner: () => ({ mac, ifname: n.ifname }),
        routeOwner: () => ({ mac, ifname: n.ifname }),
        reason: 'interface removed',
      }),
    );
    if (dev) {
      for (const a of n.addresses) {
        if (!actual.addresses.some((x) => x.dev === dev && x.address === a.address && x.prefixlen === a.prefixlen)) continue;
        changes.push({ kind: 'address', op: 'del', address: { ...a, dev }, mac, ifname: dev, reason: 'interface removed' });
      }
    }
  }
  // The last NIC with a table gone: the main-table rule ahead of the tables goes too.
  if (entries.length) changes.push(...orphanMainRules(actual, changes, 'no NIC has a table'));
  const r = await runDeletes(changes, env, opts.dryRun);
  if (opts.dryRun) return r;
  if (entries.length) {
    const nics = { ...owned.nics };
    // Keep an entry only if something of it could not be removed.
    for (const [mac] of entries) if (!r.failed.some((f) => f.change.mac === mac)) delete nics[mac];
    const goneMain = new Set(r.applied.flatMap((a) => (a.change.kind === 'rule' && a.change.rule.suppressPrefixlength !== undefined ? [`${a.change.rule.family} ${a.change.rule.priority}`] : [])));
    await writeState({ ...owned, nics, mainRules: owned.mainRules.filter((m) => !goneMain.has(m)) }, env.statePath);
  }
  return r;
}

/**
 * Removes all the policy routing we own: every rule and route marked with our protocol, and the
 * state file. Addresses stay: they are the instance's own (metadata assigned them and cloud-init's
 * rendered config carries them), and taking them away would cut live traffic. For `hotplug
 * uninstall` and for routing.enabled turning false.
 */
export async function flushOwned(opts: { env?: RoutingEnv; dryRun?: boolean } = {}): Promise<CleanupResult> {
  const env = resolveEnv(opts.env);
  const { actual, owned } = await readCurrent(env);
  const who = (table: number | null): Owner => {
    const e = Object.entries(owned.nics).find(([, n]) => n.table === table);
    return { mac: e?.[0] ?? null, ifname: e?.[1].ifname ?? null };
  };
  const changes = ownedDeletes(actual, { rule: () => true, route: () => true, ruleOwner: (r) => who(r.table), routeOwner: (r) => who(r.table), reason: 'policy routing removed' });
  const r = await runDeletes(changes, env, opts.dryRun);
  if (opts.dryRun) return r;
  // The state goes only when everything it describes went: a failure keeps it for the next try.
  if (!r.failed.length && (Object.keys(owned.nics).length || owned.mainRules.length)) await writeState({ ...owned, nics: {}, mainRules: [] }, env.statePath);
  if (r.changes.length) log('info', 'policy routing removed', { changes: r.changes.length, failed: r.failed.length });
  return r;
}
