/**
 * Removal without metadata: one NIC's rules, routes and recorded addresses at hot-unplug
 * (removeInterface), or all the rules and routes we own at uninstall or when routing is
 * disabled (flushOwned). Only protocol-199 rules and routes and recorded addresses are touched.
 */
import { ROUTING_PROTO, writeState, ruleKey } from './state.js';
import { type Change, sortChanges } from './change.js';
import { applyPlan, type ApplyResult } from './apply.js';
import { type RoutingEnv, resolveEnv, readCurrent } from './env.js';
import { log } from '../util/log.js';

/**
 * Removes everything we own for one NIC (by interface name as recorded, or MAC): its rules
 * (by recorded sources in its table), its table's routes through it, its recorded addresses.
 * For hot-unplug, after the device is gone (routes and addresses usually went with it).
 */
export async function removeInterface(ifnameOrMac: string, opts: { env?: RoutingEnv; dryRun?: boolean } = {}): Promise<{ changes: Change[]; applied: ApplyResult[]; failed: ApplyResult[] }> {
  const env = resolveEnv(opts.env);
  const { ip, statePath } = env;
  const { actual, owned } = await readCurrent(env);
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
  const env = resolveEnv(opts.env);
  const { ip, statePath } = env;
  const { actual, owned } = await readCurrent(env);
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
