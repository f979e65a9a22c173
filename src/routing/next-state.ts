/**
 * The ownership record (state file contents) after a run, from what was there before, what is
 * desired and what the system shows now. Pure.
 */
import type { Family } from './addr.js';
import { addressPlans, type DesiredState, type AddressSpec } from './desired.js';
import type { ActualState } from './actual.js';
import { ROUTING_PROTO, type OwnedState, type OwnedNic, ruleKey } from './state.js';

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
    const priority = d?.priority ?? p?.priority ?? table;
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
    nics[mac] = { ifname, table, priority, rules, addresses, updated: p && sameNic(p, { ifname, table, priority, rules, addresses }) ? p.updated : now.toISOString() };
  }
  const mainRules = after.rules.filter((r) => r.protocol === ROUTING_PROTO && r.from === 'all' && r.suppress !== undefined).map((r) => `${r.family} ${r.priority}`);
  return { version: prev.version, protocol: ROUTING_PROTO, nics, mainRules: [...new Set(mainRules)].sort() };
}

const sameNic = (a: Omit<OwnedNic, 'updated'>, b: Omit<OwnedNic, 'updated'>) =>
  JSON.stringify([a.ifname, a.table, a.priority, a.rules, a.addresses]) === JSON.stringify([b.ifname, b.table, b.priority, b.rules, b.addresses]);

/** Same NICs, tables, priorities, rules and addresses (timestamps aside): no need to rewrite the state file. */
export const sameState = (a: OwnedState, b: OwnedState) => {
  const strip = (s: OwnedState) => JSON.stringify([Object.entries(s.nics).map(([m, n]) => [m, n.ifname, n.table, n.priority, n.rules, n.addresses]).sort(), [...(s.mainRules ?? [])].sort()]);
  return strip(a) === strip(b);
};

