/** Desired versus actual, row by row, for `hotplug routes` (pure). */
import type { Snapshot } from './reconcile.js';
import { ruleText, routeText, addressText, ruleId, type Change } from './change.js';
import { ROUTING_PROTO } from './state.js';
import { sameMainRule } from './collision.js';
import { addressPlans } from './desired.js';
import { parseIp, parsePrefix, contains } from './addr.js';

export interface Row {
  kind: 'rule' | 'route' | 'address';
  family: 4 | 6;
  ifname: string | null;
  text: string;
  /** ok: desired and present; missing: desired, absent; extra: ours, not desired; foreign: not ours, untouched. */
  status: 'ok' | 'missing' | 'extra' | 'foreign';
  /** Who added what is present: us (protocol 199 / state file) or someone else. */
  owner: 'ours' | 'foreign' | null;
  note?: string;
}

const DEFAULT_RULE_PRIOS = new Set([0, 32766, 32767]);
const SYSTEM_TABLES = new Set([253, 254, 255]);
const linkLocal6 = parsePrefix('fe80::/10');

export function compareRows(s: Snapshot): Row[] {
  const rows: Row[] = [];
  const { desired, actual, owned } = s;
  const changes = s.plan.changes;
  const noteFor = (text: string) => s.plan.notes.find((n) => n.what.endsWith(text))?.reason;
  const changeFor = (pred: (c: Change) => boolean) => changes.find(pred);
  const managedDevs = new Set(addressPlans(desired).map((n) => n.ifname));
  const ownedAddr = (dev: string, address: string) => {
    const mac = actual.links.find((l) => l.ifname === dev)?.mac;
    return !!mac && !!owned.nics[mac]?.addresses.some((a) => a.address === address);
  };

  // Rules: the main-table rules ahead of the tables, then the per-NIC ones.
  const seenRules = new Set<object>();
  for (const r of desired.mainRules) {
    const have = actual.rules.filter((a) => sameMainRule(a, r));
    have.forEach((h) => seenRules.add(h));
    const text = ruleText(r);
    const ours = have.some((h) => h.protocol === ROUTING_PROTO);
    if (have.length) rows.push({ kind: 'rule', family: r.family, ifname: null, text, status: 'ok', owner: ours ? 'ours' : 'foreign' });
    else rows.push({ kind: 'rule', family: r.family, ifname: null, text, status: 'missing', owner: null, note: noteFor(text) });
  }
  for (const n of desired.nics) {
    for (const r of n.rules) {
      const have = actual.rules.filter((a) => ruleId(a) === ruleId(r) && !a.extra);
      have.forEach((h) => seenRules.add(h));
      const ours = have.find((h) => h.protocol === ROUTING_PROTO);
      const text = ruleText(r);
      if (ours) rows.push({ kind: 'rule', family: r.family, ifname: n.ifname, text, status: 'ok', owner: 'ours' });
      else if (have.length) rows.push({ kind: 'rule', family: r.family, ifname: n.ifname, text, status: 'ok', owner: 'foreign' });
      else rows.push({ kind: 'rule', family: r.family, ifname: n.ifname, text, status: 'missing', owner: null, note: noteFor(text) });
    }
  }
  for (const a of actual.rules) {
    if (seenRules.has(a)) continue;
    const text = a.suppress !== undefined && a.table !== null ? ruleText({ ...a, table: a.table, suppressPrefixlength: a.suppress }) : `from ${a.from}${a.to ? ` to ${a.to}` : ''} lookup ${a.table ?? '-'} priority ${a.priority}`;
    if (a.protocol === ROUTING_PROTO && (!a.extra || a.suppress !== undefined)) {
      const c = changeFor((c) => c.kind === 'rule' && c.op === 'del' && ruleId(c.rule) === ruleId(a));
      rows.push({ kind: 'rule', family: a.family, ifname: c ? c.ifname : null, text, status: 'extra', owner: 'ours', note: c ? `to remove: ${c.reason}` : noteFor(text) ?? 'kept' });
    } else if (!(DEFAULT_RULE_PRIOS.has(a.priority) && a.from === 'all' && !a.extra)) {
      rows.push({ kind: 'rule', family: a.family, ifname: null, text: a.extra && a.suppress === undefined ? `${text} (with other selectors)` : text, status: 'foreign', owner: 'foreign' });
    }
  }

  // Routes (only tables other than main/local/default).
  const seenRoutes = new Set<object>();
  for (const n of desired.nics) {
    for (const r of n.routes) {
      const equal = actual.routes.filter((a) => a.plain && a.family === r.family && a.table === r.table && a.dst === r.dst && (a.gateway ?? '') === (r.gateway ?? '') && a.dev === r.dev);
      equal.forEach((e) => seenRoutes.add(e));
      const text = routeText(r);
      const ours = equal.find((e) => e.protocol === ROUTING_PROTO);
      if (ours) rows.push({ kind: 'route', family: r.family, ifname: n.ifname, text, status: 'ok', owner: 'ours' });
      else if (equal.length) rows.push({ kind: 'route', family: r.family, ifname: n.ifname, text, status: 'ok', owner: 'foreign' });
      else rows.push({ kind: 'route', family: r.family, ifname: n.ifname, text, status: 'missing', owner: null, note: noteFor(text) });
    }
  }
  for (const a of actual.routes) {
    if (seenRoutes.has(a) || SYSTEM_TABLES.has(a.table)) continue;
    const text = `${a.dst}${a.gateway ? ` via ${a.gateway}` : ''}${a.dev ? ` dev ${a.dev}` : ''} table ${a.table}`;
    if (a.protocol === ROUTING_PROTO && a.plain) {
      const c = changeFor((c) => c.kind === 'route' && c.route.table === a.table && c.route.dst === a.dst && c.route.family === a.family);
      rows.push({ kind: 'route', family: a.family, ifname: a.dev ?? null, text, status: 'extra', owner: 'ours', note: c ? `to ${c.op === 'replace' ? 'replace' : 'remove'}: ${c.reason}` : noteFor(text) ?? 'kept' });
    } else {
      rows.push({ kind: 'route', family: a.family, ifname: a.dev ?? null, text, status: 'foreign', owner: 'foreign' });
    }
  }

  // Addresses on the managed NICs and the ones we own anywhere.
  const seenAddr = new Set<string>();
  for (const n of addressPlans(desired)) {
    for (const a of n.addresses) {
      seenAddr.add(`${a.dev} ${a.address}`);
      const present = actual.addresses.find((x) => x.dev === a.dev && x.address === a.address);
      const text = addressText(a);
      if (present) rows.push({ kind: 'address', family: a.family, ifname: n.ifname, text, status: 'ok', owner: ownedAddr(a.dev, a.address) ? 'ours' : 'foreign' });
      else rows.push({ kind: 'address', family: a.family, ifname: n.ifname, text, status: 'missing', owner: null, note: noteFor(text) });
    }
  }
  for (const x of actual.addresses) {
    if (seenAddr.has(`${x.dev} ${x.address}`)) continue;
    const text = `${x.address}/${x.prefixlen} dev ${x.dev}`;
    if (ownedAddr(x.dev, x.address)) {
      const c = changeFor((c) => c.kind === 'address' && c.op === 'del' && c.address.dev === x.dev && c.address.address === x.address);
      rows.push({ kind: 'address', family: x.family, ifname: x.dev, text, status: 'extra', owner: 'ours', note: c ? `to remove: ${c.reason}` : noteFor(text) ?? 'kept' });
    } else if (managedDevs.has(x.dev)) {
      const ip = parseIp(x.address);
      if (ip && typeof linkLocal6 !== 'string' && contains(linkLocal6, ip)) continue;
      rows.push({ kind: 'address', family: x.family, ifname: x.dev, text, status: 'foreign', owner: 'foreign' });
    }
  }
  return rows;
}
