/**
 * Collisions: a table or rule priority of our layout that someone else already uses (pure).
 *
 * Our numbers are fixed by metadata (table = priority = table_base + 100 × card + device), so a
 * user's own policy routing can sit on them (google-guest-agent #76 overwrote such tables). A NIC
 * whose table holds a route that is not ours, or whose priority carries a rule of someone else's
 * that looks up another table, is left alone entirely (nothing added into or next to the user's
 * policy, nothing of ours deleted) and the collision is reported; so is a foreign rule at the
 * priority of our `lookup main suppress_prefixlength 0` rule (or of the cross-subnet rules), which
 * are then not added.
 */
import type { Family } from './addr.js';
import type { DesiredState, RuleSpec } from './spec.js';
import type { ActualState, ActualRule, ActualRoute } from './actual.js';
import { ROUTING_PROTO } from './state.js';

export interface Collision {
  /** "table": foreign routes in our table; "priority": a foreign rule at our priority. */
  kind: 'table' | 'priority';
  family: Family;
  /** The table or priority number we would use. */
  number: number;
  /** The NIC that does not get its table (null: the main-table rule). */
  mac: string | null;
  ifname: string | null;
  /** The foreign rule or route found there, as `ip` would print it. */
  found: string;
  reason: string;
}

export const foreignRuleText = (r: ActualRule): string =>
  `${r.priority}: from ${r.from}${r.to ? ` to ${r.to}` : ''} ${r.table === null ? '(no lookup)' : `lookup ${r.table === 254 ? 'main' : r.table}`}${r.extra ? ' (with other selectors)' : ''}`;
export const foreignRouteText = (r: ActualRoute): string =>
  `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''} table ${r.table}${r.protocol ? ` proto ${r.protocol}` : ''}`;

const sameMainRule = (a: ActualRule, r: RuleSpec) => a.family === r.family && a.priority === r.priority && a.from === 'all' && a.table === r.table && a.suppress === r.suppressPrefixlength;

export function findCollisions(desired: DesiredState, actual: ActualState): Collision[] {
  const out: Collision[] = [];
  const families = (f: Family) => f === 4 || actual.ipv6;
  for (const n of desired.nics) {
    // Routes that are not ours in our table. One equal to what we would add is someone's twin
    // of ours (it satisfies desired); anything else means the table is in use.
    for (const a of actual.routes) {
      if (a.table !== n.table || !families(a.family) || (a.protocol === ROUTING_PROTO && a.plain)) continue;
      const equal = a.plain && n.routes.some((r) => r.family === a.family && r.dst === a.dst && (r.gateway ?? '') === (a.gateway ?? '') && r.dev === a.dev);
      if (equal) continue;
      out.push({
        kind: 'table',
        family: a.family,
        number: n.table,
        mac: n.mac,
        ifname: n.ifname,
        found: foreignRouteText(a),
        reason: `table ${n.table} already has a foreign route to ${a.dst}; ${n.ifname} gets no table (nothing added, nothing of ours removed)`,
      });
    }
    // A rule of someone else's at our priority that looks elsewhere: the kernel would order ours
    // and theirs by insertion. One that looks up our table (a hand-made twin) is harmless.
    for (const a of actual.rules) {
      if (a.priority !== n.priority || a.protocol === ROUTING_PROTO || !families(a.family)) continue;
      if (a.table === n.table && !a.extra) continue;
      out.push({ kind: 'priority', family: a.family, number: n.priority, mac: n.mac, ifname: n.ifname, found: foreignRuleText(a), reason: `priority ${n.priority} already has a foreign rule; ${n.ifname} gets no table (nothing added, nothing of ours removed)` });
    }
  }
  // The cross-subnet rules' priority (shared by every NIC): a foreign rule there keeps them all out.
  const cross = new Map<string, RuleSpec>();
  for (const n of desired.nics) for (const r of n.rules) if (r.to !== undefined) cross.set(`${r.family} ${r.priority}`, r);
  for (const r of cross.values()) {
    for (const a of actual.rules) {
      if (a.family !== r.family || a.priority !== r.priority || a.protocol === ROUTING_PROTO) continue;
      out.push({ kind: 'priority', family: a.family, number: r.priority, mac: null, ifname: null, found: foreignRuleText(a), reason: `priority ${r.priority} already has a foreign rule; the cross-subnet rules are not added` });
    }
  }
  for (const r of desired.mainRules) {
    for (const a of actual.rules) {
      if (a.family !== r.family || a.priority !== r.priority || a.protocol === ROUTING_PROTO || sameMainRule(a, r)) continue;
      out.push({ kind: 'priority', family: a.family, number: r.priority, mac: null, ifname: null, found: foreignRuleText(a), reason: `priority ${r.priority} already has a foreign rule; the main-table rule is not added` });
    }
  }
  return out;
}

/** The desired state without what collides: colliding NICs become incomplete (kept as they are), and a main-table rule goes when it collides or no NIC is left needing it. */
export function withoutCollisions(desired: DesiredState, collisions: Collision[]): DesiredState {
  if (!collisions.length) return desired;
  const bad = new Set(collisions.map((c) => c.mac).filter((m): m is string => m !== null));
  const mainBlocked = new Set(collisions.filter((c) => c.mac === null).map((c) => `${c.family} ${c.number}`));
  const nics = desired.nics.filter((n) => !bad.has(n.mac)).map((n) => ({ ...n, rules: n.rules.filter((r) => r.to === undefined || !mainBlocked.has(`${r.family} ${r.priority}`)) }));
  const mainRules = desired.mainRules.filter((r) => !mainBlocked.has(`${r.family} ${r.priority}`) && nics.some((n) => n.rules.some((x) => x.family === r.family)));
  return { ...desired, nics, mainRules, incomplete: [...new Set([...desired.incomplete, ...bad])].sort() };
}

export { sameMainRule };
