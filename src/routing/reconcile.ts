/**
 * Desired (metadata) − actual (ip -json) → the smallest set of `ip` changes, then apply.
 *
 * Ownership: a rule or route is ours iff it carries protocol ROUTING_PROTO (199); an
 * address is ours iff the state file records it: we added it, or metadata assigns it to that
 * NIC as a secondary address and it was there already (cloud-init renders local-ipv4s beyond
 * the first as static aliases; they are adopted so that they go when metadata drops them).
 * Nothing else is ever removed or replaced. Owned things are removed only when their NIC is gone or when
 * complete metadata for a present NIC no longer lists them: a failed or partial metadata
 * read never counts as "no addresses".
 */
import { join } from 'node:path';
import type { InstanceSummary } from '../../bridge/index.js';
import type { Config } from '../config.js';
import type { Family } from './addr.js';
import { desiredState, addressPlans, type DesiredState, type RuleSpec, type RouteSpec, type AddressSpec, type Skip, type NicPlan } from './desired.js';
import { readActual, readGateways, type ActualState, type ActualRule, type ActualRoute } from './actual.js';
import { type IpRunner, type FileReader, systemIp, systemReadFile } from './run.js';
import { ROUTING_PROTO, type OwnedState, type OwnedNic, readState, writeState, defaultStatePath, ruleKey } from './state.js';
import { log } from '../util/log.js';

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

export interface PlanOptions {
  /** False when the metadata read failed or was partial: then nothing is deleted for a present NIC. */
  metadataComplete: boolean;
}

export interface PlanResult {
  changes: Change[];
  /** Decisions not to act: foreign equivalents, protected NICs, conflicts, links down. */
  notes: Skip[];
}

const fam = (f: Family) => (f === 4 ? '-4' : '-6');

export function ruleText(r: Pick<RuleSpec, 'family' | 'from' | 'table' | 'priority'>): string {
  return `from ${r.from} lookup ${r.table} priority ${r.priority}`;
}
export function routeText(r: RouteSpec): string {
  return `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev} table ${r.table}${r.scope ? ` scope ${r.scope}` : ''}`;
}
export function addressText(a: AddressSpec): string {
  return `${a.address}/${a.prefixlen} dev ${a.dev}`;
}

/** The `ip` argv (without the leading "ip") that carries out a change. */
export function changeArgv(c: Change): string[] {
  const proto = String(ROUTING_PROTO);
  switch (c.kind) {
    case 'rule': {
      const r = c.rule;
      return [fam(r.family), 'rule', c.op, 'from', r.from, 'lookup', String(r.table), 'priority', String(r.priority), 'protocol', proto];
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

const ORDER: Record<string, number> = { 'rule del': 0, 'route del': 1, 'address del': 2, 'address add': 3, 'route replace': 4, 'route add': 5, 'rule add': 6 };

function sortChanges(cs: Change[]): Change[] {
  const w = (c: Change) => ORDER[`${c.kind} ${c.op}`]! * 10 + (c.kind === 'route' && c.route.dst === 'default' ? 1 : 0);
  return cs.map((c, i) => [c, i] as const).sort((a, b) => w(a[0]) - w(b[0]) || a[1] - b[1]).map(([c]) => c);
}

const sameRoute = (a: { family: Family; table: number; dst: string; gateway?: string; dev?: string }, b: typeof a) =>
  a.family === b.family && a.table === b.table && a.dst === b.dst && (a.gateway ?? '') === (b.gateway ?? '') && (a.dev ?? '') === (b.dev ?? '');

/** Minimal changes from `actual` to `desired`, touching only what `owned` (+ protocol 199) says is ours. */
export function planDetailed(desired: DesiredState, actual: ActualState, owned: OwnedState, opts: PlanOptions): PlanResult {
  const changes: Change[] = [];
  const notes: Skip[] = [];
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
  const isOwnedRule = (r: ActualRule) => r.protocol === ROUTING_PROTO && !r.extra;
  const desiredRuleKeys = new Set<string>();
  for (const n of desired.nics) {
    for (const r of n.rules) {
      if (r.family === 6 && !v6) continue;
      desiredRuleKeys.add(`${r.family}|${r.from}|${r.table}|${r.priority}`);
      const have = actual.rules.filter((a) => a.family === r.family && a.from === r.from && a.table === r.table && a.priority === r.priority && !a.extra);
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
    if (desiredRuleKeys.has(`${a.family}|${a.from}|${a.table}|${a.priority}`)) continue;
    if (a.family === 6 && !v6) continue;
    const mac = ownerOfRule(a);
    const rule: RuleSpec = { family: a.family, from: a.from, table: a.table, priority: a.priority };
    const why = deletable(mac, `rule ${ruleText(rule)}`);
    if (why) changes.push({ kind: 'rule', op: 'del', rule, mac, ifname: mac ? devOfMac(mac) ?? owned.nics[mac]?.ifname ?? null : null, reason: why });
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

  return { changes: sortChanges(changes), notes };
}

/** The changes alone (see planDetailed). */
export function plan(desired: DesiredState, actual: ActualState, owned: OwnedState, opts: PlanOptions = { metadataComplete: true }): Change[] {
  return planDetailed(desired, actual, owned, opts).changes;
}

export interface ApplyResult {
  change: Change;
  /** ok; exists (add found it already there); gone (del found nothing); failed. */
  status: 'ok' | 'exists' | 'gone' | 'failed';
  error?: string;
}

/** Runs each change in order; a failure does not stop the rest. */
export async function applyPlan(changes: Change[], ip: IpRunner = systemIp()): Promise<ApplyResult[]> {
  const out: ApplyResult[] = [];
  for (const c of changes) {
    const r = await ip(changeArgv(c));
    const err = (r.stderr || r.stdout).trim().split('\n')[0] ?? '';
    if (r.exitCode === 0) out.push({ change: c, status: 'ok' });
    else if (c.op !== 'del' && /File exists/i.test(err)) out.push({ change: c, status: 'exists' });
    else if (c.op === 'del' && /No such (file|process|device)|Cannot assign requested address|Cannot find device/i.test(err)) out.push({ change: c, status: 'gone' });
    else {
      out.push({ change: c, status: 'failed', error: err || `exit ${r.exitCode}` });
      log('warn', 'routing change failed', { change: describeChange(c), error: err });
    }
  }
  return out;
}

// --- the whole thing -------------------------------------------------------------------

export interface RoutingEnv {
  /** Runs `ip` (default: the host's; systemIp({netns}) for a namespace). */
  ip?: IpRunner;
  readFile?: FileReader;
  /** Default /run/cloud-hotplug/routing-state.json. */
  statePath?: string;
  /** Where dhclient keeps dhclient.<if>.leases (default /var/lib/dhcp under HOTPLUG_ROOT). */
  leaseDir?: string;
  now?: () => Date;
}

export interface ReconcileInput {
  summary: Pick<InstanceSummary, 'nics' | 'primary_mac'>;
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
export const defaultLeaseDir = (): string => join(process.env.HOTPLUG_ROOT ?? '/', 'var/lib/dhcp');

export interface Snapshot {
  desired: DesiredState;
  actual: ActualState;
  owned: OwnedState;
  plan: PlanResult;
}

/** Reads system and state, computes desired and the plan; changes nothing. */
export async function snapshot(input: Omit<ReconcileInput, 'dryRun'>): Promise<Snapshot> {
  const env = input.env ?? {};
  const ip = env.ip ?? systemIp();
  const routing = routingOf(input.config);
  const [actual, owned] = await Promise.all([readActual(ip), readState(env.statePath ?? defaultStatePath(), env.readFile ?? systemReadFile)]);
  const metaMacs = new Set(Object.keys(input.summary.nics ?? {}).map((m) => m.toLowerCase()));
  const ifnames = actual.links.filter((l) => metaMacs.has(l.mac)).map((l) => l.ifname);
  const { gateways, gateways6 } = await readGateways(ifnames, actual, env.readFile ?? systemReadFile, env.leaseDir ?? defaultLeaseDir());
  const desired = desiredState({
    nics: input.summary.nics ?? {},
    primaryMac: input.summary.primary_mac,
    links: actual.links,
    gateways,
    gateways6,
    config: { table_base: routing.table_base, primary: routing.primary },
  });
  return { desired, actual, owned, plan: planDetailed(desired, actual, owned, { metadataComplete: input.metadataComplete }) };
}

/**
 * The state file after a run: what we own that still exists, plus the tables of the NICs we
 * manage. Addresses metadata assigns to a NIC that are on it are recorded too (adopted: put
 * there by cloud-init's rendered config, or by us), so they go when metadata drops them.
 * The primary NIC has no table (0).
 */
export function nextState(prev: OwnedState, desired: DesiredState, after: ActualState, added: AddressSpec[], now: Date): OwnedState {
  const nics: Record<string, OwnedNic> = {};
  const ownedRules = after.rules.filter((r) => r.protocol === ROUTING_PROTO && !r.extra && r.table !== null);
  const plans = addressPlans(desired);
  const macs = new Set([...Object.keys(prev.nics), ...plans.map((n) => n.mac)]);
  for (const mac of macs) {
    const d = desired.nics.find((n) => n.mac === mac);
    const ap = plans.find((n) => n.mac === mac);
    const p = prev.nics[mac];
    const table = d?.table ?? p?.table ?? 0;
    const ifname = ap?.ifname ?? after.links.find((l) => l.mac === mac && !l.stacked)?.ifname ?? p!.ifname;
    const strip = ({ family, address, prefixlen }: { family: Family; address: string; prefixlen: number }) => ({ family, address, prefixlen });
    const adopted = ap ? after.addresses.filter((x) => x.dev === ifname && ap.addresses.some((a) => a.family === x.family && a.address === x.address)) : [];
    const mine = [...(p?.addresses ?? []), ...added.filter((a) => a.dev === ifname && ap).map(strip), ...adopted.map(strip)];
    const addresses = mine.filter(
      (a, i) =>
        mine.findIndex((b) => b.address === a.address && b.prefixlen === a.prefixlen) === i &&
        after.addresses.some((x) => x.dev === ifname && x.address === a.address && x.prefixlen === a.prefixlen),
    );
    const keys = new Set([...(p?.rules ?? []), ...(d?.rules.map((r) => ruleKey(r.family, r.from)) ?? [])]);
    const rules = table ? [...keys].filter((k) => ownedRules.some((r) => r.table === table && ruleKey(r.family, r.from) === k)) : [];
    if (!d && !rules.length && !addresses.length) continue;
    nics[mac] = { ifname, table, rules, addresses, updated: p && sameNic(p, { ifname, table, rules, addresses }) ? p.updated : now.toISOString() };
  }
  return { version: prev.version, protocol: ROUTING_PROTO, nics };
}

const sameNic = (a: Omit<OwnedNic, 'updated'>, b: Omit<OwnedNic, 'updated'>) =>
  JSON.stringify([a.ifname, a.table, a.rules, a.addresses]) === JSON.stringify([b.ifname, b.table, b.rules, b.addresses]);

const sameState = (a: OwnedState, b: OwnedState) => {
  const strip = (s: OwnedState) => JSON.stringify(Object.entries(s.nics).map(([m, n]) => [m, n.ifname, n.table, n.rules, n.addresses]).sort());
  return strip(a) === strip(b);
};

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
  const env = input.env ?? {};
  const ip = env.ip ?? systemIp();
  const statePath = env.statePath ?? defaultStatePath();
  const now = env.now ?? (() => new Date());
  const snap = await snapshot({ ...input, env: { ...env, ip } });
  const { desired, owned } = snap;
  const changes = snap.plan.changes;
  const skipped = [...desired.skipped, ...snap.plan.notes];
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
    if (!p) pre.nics[n.mac] = { ifname: n.ifname, table: n.table, rules: [], addresses: [], updated: now().toISOString() };
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

/**
 * Removes everything we own for one NIC (by interface name as recorded, or MAC): its rules
 * (by recorded sources in its table), its table's routes through it, its recorded addresses.
 * For hot-unplug, after the device is gone (routes and addresses usually went with it).
 */
export async function removeInterface(ifnameOrMac: string, opts: { env?: RoutingEnv; dryRun?: boolean } = {}): Promise<{ changes: Change[]; applied: ApplyResult[]; failed: ApplyResult[] }> {
  const env = opts.env ?? {};
  const ip = env.ip ?? systemIp();
  const statePath = env.statePath ?? defaultStatePath();
  const [actual, owned] = await Promise.all([readActual(ip), readState(statePath, env.readFile ?? systemReadFile)]);
  const key = ifnameOrMac.toLowerCase();
  const entries = Object.entries(owned.nics).filter(([mac, n]) => mac === key || n.ifname === ifnameOrMac);
  const changes: Change[] = [];
  for (const [mac, n] of entries) {
    const link = actual.links.find((l) => l.mac === mac && !l.stacked) ?? actual.links.find((l) => l.mac === mac);
    const dev = link?.ifname ?? null;
    // Another present NIC recorded with the same table (number reused): only our recorded sources go.
    const shared = Object.entries(owned.nics).some(([m, o]) => m !== mac && o.table === n.table && actual.links.some((l) => l.mac === m));
    for (const r of actual.rules) {
      if (r.protocol !== ROUTING_PROTO || r.extra || r.table !== n.table || r.from === 'all') continue;
      if (shared && !n.rules.includes(ruleKey(r.family, r.from))) continue;
      changes.push({ kind: 'rule', op: 'del', rule: { family: r.family, from: r.from, table: r.table, priority: r.priority }, mac, ifname: n.ifname, reason: 'interface removed' });
    }
    // Routes through the device (gone with it, usually). If its old name now belongs to another
    // device, routes through that name are the other device's.
    const routeDev = dev ?? (actual.links.some((l) => l.ifname === n.ifname) ? null : n.ifname);
    for (const r of actual.routes) {
      if (r.protocol !== ROUTING_PROTO || !r.plain || !r.dev || r.table !== n.table) continue;
      if (routeDev === null || r.dev !== routeDev) continue;
      changes.push({ kind: 'route', op: 'del', route: { family: r.family, table: r.table, dst: r.dst, gateway: r.gateway, dev: r.dev }, mac, ifname: r.dev, reason: 'interface removed' });
    }
    if (dev) {
      for (const a of n.addresses) {
        if (!actual.addresses.some((x) => x.dev === dev && x.address === a.address && x.prefixlen === a.prefixlen)) continue;
        changes.push({ kind: 'address', op: 'del', address: { ...a, dev }, mac, ifname: dev, reason: 'interface removed' });
      }
    }
  }
  const sorted = sortChanges(changes);
  if (opts.dryRun) return { changes: sorted, applied: [], failed: [] };
  const results = await applyPlan(sorted, ip);
  const failed = results.filter((r) => r.status === 'failed');
  if (entries.length) {
    const nics = { ...owned.nics };
    // Keep an entry only if something of it could not be removed.
    for (const [mac] of entries) if (!failed.some((f) => f.change.mac === mac)) delete nics[mac];
    await writeState({ ...owned, nics }, statePath);
  }
  return { changes: sorted, applied: results.filter((r) => r.status !== 'failed'), failed };
}

/**
 * Removes all the policy routing we own: every rule and route marked with our protocol, and the
 * state file. Addresses stay: they are the instance's own (metadata assigned them and cloud-init's
 * rendered config carries them), and taking them away would cut live traffic. For `hotplug
 * uninstall` and for routing.enabled turning false.
 */
export async function flushOwned(opts: { env?: RoutingEnv; dryRun?: boolean } = {}): Promise<{ changes: Change[]; applied: ApplyResult[]; failed: ApplyResult[] }> {
  const env = opts.env ?? {};
  const ip = env.ip ?? systemIp();
  const statePath = env.statePath ?? defaultStatePath();
  const [actual, owned] = await Promise.all([readActual(ip), readState(statePath, env.readFile ?? systemReadFile)]);
  const who = (table: number | null) => {
    const e = Object.entries(owned.nics).find(([, n]) => n.table === table);
    return { mac: e?.[0] ?? null, ifname: e?.[1].ifname ?? null };
  };
  const changes: Change[] = [];
  for (const r of actual.rules) {
    if (r.protocol !== ROUTING_PROTO || r.extra || r.table === null) continue;
    changes.push({ kind: 'rule', op: 'del', rule: { family: r.family, from: r.from, table: r.table, priority: r.priority }, ...who(r.table), reason: 'policy routing removed' });
  }
  for (const r of actual.routes) {
    if (r.protocol !== ROUTING_PROTO || !r.plain || !r.dev) continue;
    changes.push({ kind: 'route', op: 'del', route: { family: r.family, table: r.table, dst: r.dst, gateway: r.gateway, dev: r.dev }, ...who(r.table), reason: 'policy routing removed' });
  }
  const sorted = sortChanges(changes);
  if (opts.dryRun) return { changes: sorted, applied: [], failed: [] };
  const results = await applyPlan(sorted, ip);
  const failed = results.filter((r) => r.status === 'failed');
  // The state goes only when everything it describes went: a failure keeps it for the next try.
  if (!failed.length && Object.keys(owned.nics).length) await writeState({ ...owned, nics: {} }, statePath);
  if (sorted.length) log('info', 'policy routing removed', { changes: sorted.length, failed: failed.length });
  return { changes: sorted, applied: results.filter((r) => r.status !== 'failed'), failed };
}
