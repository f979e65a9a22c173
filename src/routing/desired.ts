/**
 * What policy routing the instance should have, from metadata alone (pure).
 *
 * The primary NIC keeps the main table and gets no rules (rules on it blackhole Docker's
 * return traffic: amazon-ec2-net-utils #97), only its secondary addresses (nothing else adds
 * those when metadata gains one after boot: ifup of an up interface is a no-op). Every other
 * NIC present on the system and in metadata gets a table T = table_base + 100 × network_card +
 * device_number holding its subnet route and a default route, `from <ip> lookup T priority T`
 * rules for each of its addresses and delegated prefixes, and its secondary addresses; ahead of
 * those, `from <its subnet> to <each other NIC's subnet> lookup T` (table_base - 2) and one
 * `lookup main suppress_prefixlength 0` per family (table_base - 1). Each
 * value from metadata is validated; anything invalid is skipped with a reason, never handed to `ip`.
 *
 * A NIC whose metadata cannot be complete (no private address at all, or an IPv4 subnet but
 * no IPv4 address: a crawl that skipped a leaf) is "incomplete": nothing is planned for it and
 * nothing of it is deleted.
 */
import type { NicMeta } from '../../bridge/index.js';
import { type Family, type Prefix, parsePrefix, contains } from './addr.js';
import { MAIN_RULE_PRIORITY, MAIN_TABLE, MAX_INDEX, suppressPriority, crossPriority, type DesiredInput, type DesiredState, type AddressPlan, type NicPlan, type RuleSpec, type RouteSpec, type AddressSpec, type Skip } from './spec.js';
import { smallInt, show, linkFor, incompleteWhy, addressPart, nicPlan } from './nic-plan.js';

export * from './spec.js';

export function desiredState(input: DesiredInput): DesiredState {
  const skipped: Skip[] = [];
  const incomplete = new Set<string>();
  const links = input.links.map((l) => ({ ...l, mac: l.mac.toLowerCase() }));
  const nics = new Map<string, NicMeta>();
  for (const [key, n] of Object.entries(input.nics ?? {})) {
    const mac = String(n?.mac ?? key).toLowerCase();
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac) || mac !== key.toLowerCase()) {
      skipped.push({ what: 'nic', value: show(key), reason: 'MAC key invalid or not matching its mac field' });
      continue;
    }
    nics.set(mac, n);
  }

  // Links we cannot act on: not in metadata, or ambiguous.
  for (const l of links) if (!nics.has(l.mac)) incomplete.add(l.mac);

  // --- primary -------------------------------------------------------------------------
  let primary: DesiredState['primary'] = { mac: null, ifname: null, source: 'none' };
  const cfgPrimary = input.config.primary;
  if (cfgPrimary) {
    const byCfg = links.find((l) => l.ifname === cfgPrimary || l.mac === cfgPrimary.toLowerCase());
    if (byCfg) primary = { mac: byCfg.mac, ifname: byCfg.ifname, source: 'config' };
    else skipped.push({ what: 'routing.primary', value: cfgPrimary, reason: 'configured primary is not a present interface; using the metadata primary' });
  }
  if (primary.source === 'none' && input.primaryMac) {
    const mac = input.primaryMac.toLowerCase();
    const l = linkFor(mac, links);
    primary = { mac, ifname: l && l !== 'ambiguous' ? l.ifname : null, source: 'metadata' };
  }
  if (primary.source === 'none') {
    const zero = [...nics.entries()].filter(([, n]) => smallInt(n.device_number) === 0 && (smallInt(n.network_card ?? 0) ?? 0) === 0);
    if (zero.length === 1) {
      const mac = zero[0]![0];
      const l = linkFor(mac, links);
      primary = { mac, ifname: l && l !== 'ambiguous' ? l.ifname : null, source: 'device-number-0' };
    }
  }
  if (primary.source === 'none') {
    // Without knowing the primary, rules could land on it and break its traffic: do nothing.
    for (const l of links) incomplete.add(l.mac);
    skipped.push({ what: 'all nics', reason: 'cannot tell the primary NIC (no configured or metadata primary, no single device-number 0)' });
    return { primary, nics: [], mainRules: [], primaryAddresses: null, incomplete: [...incomplete].sort(), skipped };
  }

  // --- the primary's secondary addresses -----------------------------------------------
  let primaryAddresses: AddressPlan | null = null;
  const pMeta = primary.mac ? nics.get(primary.mac) : undefined;
  const pLink = primary.mac ? linkFor(primary.mac, links) : null;
  if (pMeta && pLink && pLink !== 'ambiguous') {
    const why = incompleteWhy(pMeta);
    if (why) {
      skipped.push({ mac: pLink.mac, ifname: pLink.ifname, what: 'nic', reason: why });
      incomplete.add(pLink.mac);
    } else {
      const skip = (what: string, value: unknown, reason: string) => skipped.push({ mac: pLink.mac, ifname: pLink.ifname, what, value: show(value), reason });
      const a = addressPart(pMeta, pLink.ifname, skip, true);
      primaryAddresses = { mac: pLink.mac, ifname: pLink.ifname, up: pLink.up, primaryIpv4: a.primaryIpv4, addresses: a.addresses };
    }
  }

  // --- secondary NICs ------------------------------------------------------------------
  const plans: NicPlan[] = [];
  const byTable = new Map<number, string>();
  const candidates = [...nics.entries()]
    .filter(([mac]) => mac !== primary.mac)
    .map(([mac, n]) => ({ mac, n, dev: smallInt(n.device_number), card: n.network_card == null ? 0 : smallInt(n.network_card) }))
    .sort((a, b) => (a.card ?? 1e9) - (b.card ?? 1e9) || (a.dev ?? 1e9) - (b.dev ?? 1e9) || a.mac.localeCompare(b.mac));

  for (const { mac, n, dev, card } of candidates) {
    const link = linkFor(mac, links);
    if (link === null) continue; // not attached here (yet, or any more)
    const skipNic = (reason: string, value?: string) => {
      skipped.push({ mac, ifname: link === 'ambiguous' ? undefined : link.ifname, what: 'nic', value, reason });
      incomplete.add(mac);
    };
    if (link === 'ambiguous') {
      skipNic('several interfaces carry this MAC');
      continue;
    }
    if (dev === null) {
      skipNic(`device-number must be an integer 0-${MAX_INDEX}`, show(n.device_number));
      continue;
    }
    if (card === null) {
      skipNic(`network-card must be an integer 0-${MAX_INDEX}`, show(n.network_card));
      continue;
    }
    const why = incompleteWhy(n);
    if (why) {
      skipNic(why);
      continue;
    }
    const table = input.config.table_base + 100 * card + dev;
    if (table > 0xffffffff || !Number.isSafeInteger(table)) {
      skipNic('route table number out of range', String(table));
      continue;
    }
    if (table >= MAIN_RULE_PRIORITY) {
      skipNic(`rule priority ${table} would come after the main table's rule (${MAIN_RULE_PRIORITY}); lower routing.table_base`, String(table));
      continue;
    }
    const clash = byTable.get(table);
    if (clash) {
      skipNic(`table ${table} already used by ${clash} (device-number ${dev}, network-card ${card})`, String(table));
      continue;
    }
    byTable.set(table, mac);
    plans.push(nicPlan(mac, n, link, table, dev, card, input, skipped));
  }

  addCrossRules(plans, primary.mac ? nics.get(primary.mac) : undefined, input.config.table_base);
  return { primary, nics: plans, mainRules: mainRules(plans, input.config.table_base), primaryAddresses, incomplete: [...incomplete].sort(), skipped };
}

const overlap = (a: Prefix, b: Prefix) => a.family === b.family && (contains(a, { family: b.family, value: b.network, text: '' }) || contains(b, { family: a.family, value: a.network, text: '' }));

/**
 * The cross-subnet rules: `from <NIC's subnet> to <another NIC's subnet> lookup <NIC's table>` at
 * table_base - 2, ahead of the main-table rule. Main's route to another NIC's subnet goes out of
 * that other NIC, whose source/destination check drops a packet with this NIC's source (a reply to
 * a peer in the primary's subnet, say); through the NIC's own table it leaves by its own NIC and
 * the cloud's router delivers it. Per family with a default route in the NIC's table; none for a
 * NIC sharing its subnet with another (its subnet as source would take in the other's addresses).
 */
function addCrossRules(plans: NicPlan[], primaryMeta: NicMeta | undefined, tableBase: number): void {
  const subnetsOf = (n: NicPlan, family: Family): Prefix[] =>
    n.routes.filter((r) => r.family === family && r.dst !== 'default' && n.routes.some((d) => d.family === family && d.dst === 'default')).map((r) => parsePrefix(r.dst, { family })).filter((p): p is Prefix => typeof p !== 'string');
  const primarySubnets = (family: Family): Prefix[] => {
    const raw = family === 4 ? (primaryMeta?.subnet_ipv4_cidr == null ? [] : [primaryMeta.subnet_ipv4_cidr]) : Array.isArray(primaryMeta?.subnet_ipv6_cidrs) ? primaryMeta!.subnet_ipv6_cidrs : [];
    return raw.map((c) => parsePrefix(c, { family, minLen: 1 })).filter((p): p is Prefix => typeof p !== 'string');
  };
  for (const family of [4, 6] as Family[]) {
    const all = [...primarySubnets(family).map((p) => ({ mac: null as string | null, p })), ...plans.flatMap((n) => subnetsOf(n, family).map((p) => ({ mac: n.mac as string | null, p })))];
    for (const n of plans) {
      for (const own of subnetsOf(n, family)) {
        if (all.some((o) => o.mac !== n.mac && overlap(o.p, own))) continue;
        const seen = new Set<string>();
        for (const o of all) {
          if (o.mac === n.mac || seen.has(o.p.text)) continue;
          seen.add(o.p.text);
          n.rules.push({ family, from: own.text, to: o.p.text, table: n.table, priority: crossPriority(tableBase) });
        }
      }
    }
  }
}

/**
 * One `lookup main suppress_prefixlength 0` rule per family that some NIC has rules for, ahead of
 * them all: a packet from a secondary address first tries the main table without its default
 * route, so a more specific route there (docker0, a VPN, an operator's route, a local subnet)
 * wins; only what main would send by its default route falls through to the NIC's own table.
 * None when no NIC has a table (nm-cloud-setup's rule, NetworkManager 1.34, after calico#4662).
 */
export function mainRules(plans: NicPlan[], tableBase: number): RuleSpec[] {
  const families = ([4, 6] as Family[]).filter((f) => plans.some((n) => n.rules.some((r) => r.family === f)));
  return families.map((family) => ({ family, from: 'all', table: MAIN_TABLE, priority: suppressPriority(tableBase), suppressPrefixlength: 0 }));
}

/** Every per-NIC rule in a desired state (the main-table rules are `d.mainRules`). */
export const allRules = (d: DesiredState): RuleSpec[] => d.nics.flatMap((n) => n.rules);
export const allRoutes = (d: DesiredState): RouteSpec[] => d.nics.flatMap((n) => n.routes);
/** Secondary NICs' addresses and the primary's. */
export const allAddresses = (d: DesiredState): AddressSpec[] => addressPlans(d).flatMap((n) => n.addresses);
/** Every NIC whose addresses are managed: the secondary NICs, then the primary. */
export const addressPlans = (d: DesiredState): AddressPlan[] => [...d.nics, ...(d.primaryAddresses ? [d.primaryAddresses] : [])];
