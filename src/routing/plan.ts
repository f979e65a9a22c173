/**
 * Desired (metadata) − actual (ip -json) → the smallest set of changes. Pure: reads nothing,
 * runs nothing (apply.ts runs the changes).
 *
 * Ownership: a rule or route is ours iff it carries protocol ROUTING_PROTO (199); an
 * address is ours iff the state file records it: we added it, or metadata assigns it to that
 * NIC as a secondary address and it was there already (cloud-init renders local-ipv4s beyond
 * the first as static aliases; they are adopted so that they go when metadata drops them).
 * Nothing else is ever removed or replaced. Owned things are removed only when their NIC is gone or when
 * complete metadata for a present NIC no longer lists them: a failed or partial metadata
 * read never counts as "no addresses".
 */
import { type Family, parsePrefix, parseIp, contains } from './addr.js';
import { addressPlans, type DesiredState, type RuleSpec, type RouteSpec, type AddressSpec, type Skip, type NicPlan } from './desired.js';
import type { ActualState, ActualRule, ActualRoute } from './actual.js';
import { ROUTING_PROTO, type OwnedState, ruleKey } from './state.js';
import { type Change, ruleText, routeText, addressText, sortChanges, ruleId } from './change.js';
import { type Collision, findCollisions, withoutCollisions, sameMainRule } from './collision.js';

export interface PlanOptions {
  /** False when the metadata read failed or was partial: then nothing is deleted for a present NIC. */
  metadataComplete: boolean;
}

export interface PlanResult {
  changes: Change[];
  /** Decisions not to act: foreign equivalents, protected NICs, conflicts, links down. */
  notes: Skip[];
  /** Our tables or priorities that someone else uses: left alone, reported. */
  collisions: Collision[];
  /** The desired state planned for: the one given less what collides (what the state file may record). */
  desired: DesiredState;
}

const sameRoute = (a: { family: Family; table: number; dst: string; gateway?: string; dev?: string }, b: typeof a) =>
  a.family === b.family && a.table === b.table && a.dst === b.dst && (a.gateway ?? '') === (b.gateway ?? '') && (a.dev ?? '') === (b.dev ?? '');

/** Minimal changes from `actual` to `desired`, touching only what `owned` (+ protocol 199) says is ours. */
export function planDetailed(wanted: DesiredState, actual: ActualState, owned: OwnedState, opts: PlanOptions): PlanResult {
  const changes: Change[] = [];
  const notes: Skip[] = [];
  const collisions = findCollisions(wanted, actual);
  for (const c of collisions) notes.push({ mac: c.mac ?? undefined, ifname: c.ifname ?? undefined, what: `${c.kind} ${c.number}`, value: c.found, reason: `collision: ${c.reason}` });
  const desired = withoutCollisions(wanted, collisions);
  const v6 = actual.ipv6;
  const presentMacs = new Set(actual.links.map((l) => l.mac));
  const macOfDev = new Map<string, string>();
  for (const l of actual.links) if (!l.stacked || !macOfDev.has(l.ifname)) macOfDev.set(l.ifname, l.mac);
  const devOfMac = (mac: string): string | null => {
    const d = addressPlans(desired).find((n) => n.mac === mac);
    if (d) return d.ifname;
    const ls = actual.links.filter((l) => l.mac === mac);
    return (ls.find((l) => !l.stacked) ?? ls[0])?.ifname ?? null;
  };
  const protectedMacs = new Set(desired.incomplete);
  if (!opts.metadataComplete) for (const m of presentMacs) protectedMacs.add(m);
  const nicByTable = new Map<number, NicPlan>(desired.nics.map((n) => [n.table, n]));
  const protectedDevs = new Set(actual.links.filter((l) => protectedMacs.has(l.mac)).map((l) => l.ifname));
  const towardsProtected = (family: Family, to: string): boolean => {
    const p = parsePrefix(to, { family });
    return typeof p !== 'string' && actual.addresses.some((x) => x.family === family && protectedDevs.has(x.dev) && contains(p, parseIp(x.address, family) ?? { family, value: -1n, text: '' }));
  };

  const ownerOfRule = (r: ActualRule): string | null => {
    const key = ruleKey(r.family, r.from);
    for (const [mac, n] of Object.entries(owned.nics)) if (n.table === r.table && n.rules.includes(key)) return mac;
    const d = r.table === null ? undefined : nicByTable.get(r.table);
    if (d) return d.mac;
    const byTable = Object.entries(owned.nics).filter(([, n]) => n.table === r.table);
    return byTable.length === 1 ? byTable[0]![0] : null;
  };
  const ownerOfRoute = (r: ActualRoute): string | null => {
    if (r.dev && macOfDev.has(r.dev)) return macOfDev.get(r.dev)!;
    const d = nicByTable.get(r.table);
    if (d) return d.mac;
    const byTable = Object.entries(owned.nics).filter(([, n]) => n.table === r.table);
    return byTable.length === 1 ? byTable[0]![0] : null;
  };
  /** Whether an owned object of `mac` that is no longer desired may be deleted, and why. */
  const deletable = (mac: string | null, what: string, kind: Change['kind'] = 'rule'): string | null => {
    if (mac === null) {
      notes.push({ what, reason: 'ours, but its NIC is unknown (no state for its table); left alone' });
      return null;
    }
    const ifname = devOfMac(mac) ?? owned.nics[mac]?.ifname;
    if (!presentMacs.has(mac)) return 'NIC gone';
    if (protectedMacs.has(mac)) {
      const why = !opts.metadataComplete
        ? 'metadata read incomplete'
        : desired.primary.source === 'none'
          ? 'primary NIC unknown'
          : 'NIC missing from metadata or its metadata is invalid';
      notes.push({ mac, ifname: ifname ?? undefined, what, reason: `kept: ${why}` });
      return null;
    }
    if (desired.primary.mac === mac && kind !== 'address') return 'NIC is the primary (main table, no rules)';
    return 'no longer in metadata';
  };

  // --- rules ---------------------------------------------------------------------------
  // The main-table rules first: added ahead of the per-NIC rules, they never let those capture
  // traffic for main's more specific routes, even for a moment.
  for (const r of desired.mainRules) {
    if (r.family === 6 && !v6) continue;
    const have = actual.rules.filter((a) => sameMainRule(a, r));
    if (have.some((a) => a.protocol === ROUTING_PROTO)) continue;
    if (have.length) {
      notes.push({ what: `rule ${ruleText(r)}`, reason: 'present, added by someone else (foreign); left as is' });
      continue;
    }
    changes.push({ kind: 'rule', op: 'add', rule: r, mac: null, ifname: null, reason: 'missing' });
  }
  const isOwnedRule = (r: ActualRule) => r.protocol === ROUTING_PROTO && !r.extra;
  const desiredRuleKeys = new Set<string>();
  for (const n of desired.nics) {
    for (const r of n.rules) {
      if (r.family === 6 && !v6) continue;
      desiredRuleKeys.add(ruleId(r));
      const have = actual.rules.filter((a) => ruleId(a) === ruleId(r) && !a.extra);
      if (have.some(isOwnedRule)) continue;
      if (have.length) {
        notes.push({ mac: n.mac, ifname: n.ifname, what: `rule ${ruleText(r)}`, reason: 'present, added by someone else (foreign); left as is' });
        continue;
      }
      changes.push({ kind: 'rule', op: 'add', rule: r, mac: n.mac, ifname: n.ifname, reason: 'missing' });
    }
  }
  for (const a of actual.rules) {
    if (!isOwnedRule(a) || a.table === null || a.from === 'all') continue;
    if (desiredRuleKeys.has(ruleId(a))) continue;
    if (a.family === 6 && !v6) continue;
    const mac = ownerOfRule(a);
    const rule: RuleSpec = { family: a.family, from: a.from, ...(a.to !== undefined ? { to: a.to } : {}), table: a.table, priority: a.priority };
    // A cross-subnet rule towards a NIC that is kept as it is (metadata incomplete) stays with it.
    if (a.to !== undefined && mac !== null && presentMacs.has(mac) && towardsProtected(a.family, a.to)) {
      notes.push({ mac, what: `rule ${ruleText(rule)}`, reason: 'kept: its destination is the subnet of a NIC kept as it is' });
      continue;
    }
    const why = deletable(mac, `rule ${ruleText(rule)}`);
    if (why) changes.push({ kind: 'rule', op: 'del', rule, mac, ifname: mac ? devOfMac(mac) ?? owned.nics[mac]?.ifname ?? null : null, reason: why });
  }

  // Our main-table rules that are no longer wanted go once no per-NIC rule of ours of their family stays.
  const deletedRules = new Set(changes.filter((c) => c.kind === 'rule' && c.op === 'del').map((c) => (c.kind === 'rule' ? ruleId(c.rule) : '')));
  const keepsNicRules = (f: Family) =>
    actual.rules.some((a) => a.family === f && isOwnedRule(a) && a.from !== 'all' && a.table !== null && !deletedRules.has(ruleId(a))) ||
    changes.some((c) => c.kind === 'rule' && c.op === 'add' && c.rule.family === f && c.rule.from !== 'all');
  for (const a of actual.rules) {
    if (a.protocol !== ROUTING_PROTO || a.suppress === undefined || a.from !== 'all' || a.table === null) continue;
    if (a.family === 6 && !v6) continue;
    if (desired.mainRules.some((r) => sameMainRule(a, r))) continue;
    const rule: RuleSpec = { family: a.family, from: 'all', table: a.table, priority: a.priority, suppressPrefixlength: a.suppress };
    if (keepsNicRules(a.family) && !desired.mainRules.some((r) => r.family === a.family)) {
      notes.push({ what: `rule ${ruleText(rule)}`, reason: 'kept: per-NIC rules of ours remain' });
      continue;
    }
    changes.push({ kind: 'rule', op: 'del', rule, mac: null, ifname: null, reason: 'no NIC has a table' });
  }

  // --- routes --------------------------------------------------------------------------
  const isOwnedRoute = (r: ActualRoute) => r.protocol === ROUTING_PROTO && r.plain;
  const keptRoutes = new Set<ActualRoute>();
  for (const n of desired.nics) {
    for (const r of n.routes) {
      if (r.family === 6 && !v6) continue;
      const same = actual.routes.filter((a) => a.family === r.family && a.table === r.table && a.dst === r.dst);
      const equal = same.find((a) => a.plain && sameRoute(a, r));
      if (equal) {
        keptRoutes.add(equal);
        if (!isOwnedRoute(equal)) notes.push({ mac: n.mac, ifname: n.ifname, what: `route ${routeText(r)}`, reason: 'present, added by someone else (foreign); left as is' });
        continue;
      }
      const foreign = same.find((a) => !isOwnedRoute(a));
      if (foreign) {
        notes.push({ mac: n.mac, ifname: n.ifname, what: `route ${routeText(r)}`, reason: `table ${r.table} already has a foreign route to ${r.dst}; not replaced` });
        same.forEach((a) => keptRoutes.add(a));
        continue;
      }
      if (!n.up) {
        notes.push({ mac: n.mac, ifname: n.ifname, what: `route ${routeText(r)}`, reason: `${n.ifname} is down; added when it comes up` });
        same.forEach((a) => keptRoutes.add(a));
        continue;
      }
      const old = same.find(isOwnedRoute);
      if (old) {
        keptRoutes.add(old);
        changes.push({ kind: 'route', op: 'replace', route: r, mac: n.mac, ifname: n.ifname, reason: `was ${old.gateway ? `via ${old.gateway} ` : ''}dev ${old.dev ?? '?'}` });
      } else {
        changes.push({ kind: 'route', op: 'add', route: r, mac: n.mac, ifname: n.ifname, reason: 'missing' });
      }
    }
  }
  for (const a of actual.routes) {
    if (!isOwnedRoute(a) || keptRoutes.has(a) || !a.dev) continue;
    if (a.family === 6 && !v6) continue;
    const mac = ownerOfRoute(a);
    const route: RouteSpec = { family: a.family, table: a.table, dst: a.dst, gateway: a.gateway, dev: a.dev };
    const why = deletable(mac, `route ${routeText(route)}`);
    if (why) changes.push({ kind: 'route', op: 'del', route, mac, ifname: a.dev, reason: why });
  }

  // --- addresses -----------------------------------------------------------------------
  const hasAddr = (dev: string, address: string) => actual.addresses.some((x) => x.dev === dev && x.address === address);
  for (const n of addressPlans(desired)) {
    for (const a of n.addresses) {
      if (a.family === 6 && !v6) continue;
      if (hasAddr(a.dev, a.address)) continue;
      const elsewhere = actual.addresses.find((x) => x.address === a.address);
      if (elsewhere) {
        notes.push({ mac: n.mac, ifname: n.ifname, what: `address ${addressText(a)}`, reason: `already on ${elsewhere.dev}; not added` });
        continue;
      }
      if (a.family === 4) {
        // Added before DHCP's address, ours would become the interface's primary address.
        if (!n.primaryIpv4) {
          notes.push({ mac: n.mac, ifname: n.ifname, what: `address ${addressText(a)}`, reason: 'metadata has no valid primary IPv4 for this NIC; not added' });
          continue;
        }
        if (!hasAddr(n.ifname, n.primaryIpv4)) {
          notes.push({ mac: n.mac, ifname: n.ifname, what: `address ${addressText(a)}`, reason: `waiting for the primary address ${n.primaryIpv4} (DHCP) on ${n.ifname}` });
          continue;
        }
      }
      changes.push({ kind: 'address', op: 'add', address: a, mac: n.mac, ifname: n.ifname, reason: 'missing' });
    }
  }
  for (const [mac, o] of Object.entries(owned.nics)) {
    const dev = presentMacs.has(mac) ? devOfMac(mac) : null;
    if (!dev) continue; // gone with its device
    const d = addressPlans(desired).find((n) => n.mac === mac);
    for (const a of o.addresses) {
      if (a.family === 6 && !v6) continue;
      if (!actual.addresses.some((x) => x.dev === dev && x.address === a.address && x.prefixlen === a.prefixlen)) continue;
      if (d?.addresses.some((x) => x.address === a.address)) continue;
      const address: AddressSpec = { family: a.family, dev, address: a.address, prefixlen: a.prefixlen };
      const why = deletable(mac, `address ${addressText(address)}`, 'address');
      if (why) changes.push({ kind: 'address', op: 'del', address, mac, ifname: dev, reason: why });
    }
  }

  return { changes: sortChanges(changes), notes, collisions, desired };
}

/** The changes alone (see planDetailed). */
export function plan(desired: DesiredState, actual: ActualState, owned: OwnedState, opts: PlanOptions = { metadataComplete: true }): Change[] {
  return planDetailed(desired, actual, owned, opts).changes;
}
