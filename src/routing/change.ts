/**
 * One routing change (add, replace or delete a rule, route or address): its type, how it reads
 * in notes and views, the `ip` argv that carries it out, and the order a batch of changes runs in.
 * Pure.
 */
import type { Family } from './addr.js';
import type { RuleSpec, RouteSpec, AddressSpec } from './desired.js';
import { ROUTING_PROTO } from './state.js';

interface ChangeBase {
  /** NIC the change belongs to (null: unknown owner). */
  mac: string | null;
  ifname: string | null;
  /** Why: "missing", "gateway changed", "NIC gone", "no longer in metadata" … */
  reason: string;
}
export type Change =
  | (ChangeBase & { kind: 'rule'; op: 'add' | 'del'; rule: RuleSpec })
  | (ChangeBase & { kind: 'route'; op: 'add' | 'replace' | 'del'; route: RouteSpec })
  | (ChangeBase & { kind: 'address'; op: 'add' | 'del'; address: AddressSpec });

const fam = (f: Family) => (f === 4 ? '-4' : '-6');

export function ruleText(r: Pick<RuleSpec, 'family' | 'from' | 'to' | 'table' | 'priority' | 'suppressPrefixlength'>): string {
  const lookup = r.table === 254 ? 'main' : String(r.table);
  return `from ${r.from}${r.to ? ` to ${r.to}` : ''} lookup ${lookup}${r.suppressPrefixlength !== undefined ? ` suppress_prefixlength ${r.suppressPrefixlength}` : ''} priority ${r.priority}`;
}
export function routeText(r: RouteSpec): string {
  return `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev} table ${r.table}${r.scope ? ` scope ${r.scope}` : ''}`;
}
export function addressText(a: AddressSpec): string {
  return `${a.address}/${a.prefixlen} dev ${a.dev}`;
}

/** A rule's identity: family, selectors, table and priority. */
export const ruleId = (r: { family: Family; from: string; to?: string; table: number | null; priority: number }): string => `${r.family}|${r.from}|${r.to ?? ''}|${r.table}|${r.priority}`;

/** The `ip` argv (without the leading "ip") that carries out a change. */
export function changeArgv(c: Change): string[] {
  const proto = String(ROUTING_PROTO);
  switch (c.kind) {
    case 'rule': {
      const r = c.rule;
      const suppress = r.suppressPrefixlength !== undefined ? ['suppress_prefixlength', String(r.suppressPrefixlength)] : [];
      return [fam(r.family), 'rule', c.op, 'from', r.from, ...(r.to ? ['to', r.to] : []), 'lookup', String(r.table), ...suppress, 'priority', String(r.priority), 'protocol', proto];
    }
    case 'route': {
      const r = c.route;
      const a = [fam(r.family), 'route', c.op, r.dst];
      if (r.gateway) a.push('via', r.gateway);
      a.push('dev', r.dev, 'table', String(r.table), 'proto', proto);
      if (r.scope && c.op !== 'del') a.push('scope', r.scope);
      return a;
    }
    case 'address': {
      const a = c.address;
      const argv = [fam(a.family), 'addr', c.op, `${a.address}/${a.prefixlen}`, 'dev', a.dev];
      // Never alter the main table; no DAD on a cloud fabric that hands out the address.
      if (c.op === 'add') argv.push('noprefixroute', ...(a.family === 6 ? ['nodad'] : []));
      return argv;
    }
  }
}

export function describeChange(c: Change): string {
  return `ip ${changeArgv(c).join(' ')}`;
}

// Deletes before adds. Rules go first and come last, so a rule never sends packets into a table
// that lacks its routes; a default route comes after the subnet route that makes its gateway reachable.
const ORDER: Record<string, number> = { 'rule del': 0, 'route del': 1, 'address del': 2, 'address add': 3, 'route replace': 4, 'route add': 5, 'rule add': 6 };

/** Stable: changes of the same kind and op keep their order. */
export function sortChanges(cs: Change[]): Change[] {
  const w = (c: Change) => ORDER[`${c.kind} ${c.op}`]! * 10 + (c.kind === 'route' && c.route.dst === 'default' ? 1 : 0);
  return cs.map((c, i) => [c, i] as const).sort((a, b) => w(a[0]) - w(b[0]) || a[1] - b[1]).map(([c]) => c);
}
