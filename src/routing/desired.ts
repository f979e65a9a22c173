/**
 * What policy routing the instance should have, from metadata alone (pure).
 *
 * The primary NIC keeps the main table and gets no rules (rules on it blackhole Docker's
 * return traffic: amazon-ec2-net-utils #97), only its secondary addresses (nothing else adds
 * those when metadata gains one after boot: ifup of an up interface is a no-op). Every other
 * NIC present on the system and in metadata gets a table T = table_base + 100 × network_card +
 * device_number holding its subnet route and a default route, `from <ip> lookup T priority T`
 * rules for each of its addresses and delegated prefixes, and its secondary addresses. Each
 * value from metadata is validated; anything invalid is skipped with a reason, never handed to `ip`.
 *
 * A NIC whose metadata cannot be complete (no private address at all, or an IPv4 subnet but
 * no IPv4 address: a crawl that skipped a leaf) is "incomplete": nothing is planned for it and
 * nothing of it is deleted.
 */
import type { NicMeta } from '../../bridge/index.js';
import { type Family, type Ip, type Prefix, parseIp, parsePrefix, contains, notUnicast, formatIp } from './addr.js';

export interface LinkInfo {
  ifname: string;
  /** Lower-case MAC. */
  mac: string;
  /** Administratively up (IFF_UP): routes can only be added to an up device. */
  up: boolean;
  /** Stacked on another device (vlan, macvlan: it shares its parent's MAC). */
  stacked?: boolean;
}

export interface DesiredInput {
  nics: Record<string, NicMeta>;
  primaryMac: string | null;
  /** The instance's interfaces now. */
  links: LinkInfo[];
  /** IPv4 gateway per interface from its DHCP lease (ifname → address). */
  gateways: Record<string, string | undefined>;
  /** IPv6 default router per interface from router advertisements. */
  gateways6?: Record<string, string | undefined>;
  config: { table_base: number; primary: string | null };
}

export interface RuleSpec {
  family: Family;
  /** Source selector as `ip -json rule` prints it plus length: canonical "addr/len". */
  from: string;
  table: number;
  priority: number;
}

export interface RouteSpec {
  family: Family;
  table: number;
  /** "default" or a canonical "network/len". */
  dst: string;
  gateway?: string;
  dev: string;
  scope?: 'link';
}

export interface AddressSpec {
  family: Family;
  dev: string;
  address: string;
  prefixlen: number;
}

/** Secondary addresses of one NIC (what the primary NIC gets: no table, rules or routes). */
export interface AddressPlan {
  mac: string;
  ifname: string;
  up: boolean;
  /** The NIC's primary private IPv4 (first of local-ipv4s), normally from DHCP. */
  primaryIpv4: string | null;
  addresses: AddressSpec[];
}

export interface NicPlan extends AddressPlan {
  table: number;
  priority: number;
  deviceNumber: number;
  networkCard: number;
  gateway4: { address: string; source: 'lease' | 'subnet-first-host' } | null;
  gateway6: string | null;
  rules: RuleSpec[];
  routes: RouteSpec[];
}

export interface Skip {
  mac?: string;
  ifname?: string;
  /** What was skipped, e.g. "ipv4s[2]", "nic", "ipv6 routes". */
  what: string;
  value?: string;
  reason: string;
}

export interface DesiredState {
  primary: { mac: string | null; ifname: string | null; source: 'config' | 'metadata' | 'device-number-0' | 'none' };
  nics: NicPlan[];
  /** The primary NIC's secondary addresses (null: primary not present, or its metadata is incomplete). */
  primaryAddresses: AddressPlan | null;
  /**
   * MACs of present links with no complete desired state (in metadata but invalid, or
   * absent from metadata): nothing this project owns for them may be deleted.
   */
  incomplete: string[];
  skipped: Skip[];
}

/** The main table's rule; ours must come before it or they never match. */
export const MAIN_RULE_PRIORITY = 32766;
/** Largest device/card number accepted from metadata. */
export const MAX_INDEX = 9999;

function smallInt(v: unknown): number | null {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_INDEX) return v;
  if (typeof v === 'string' && /^(0|[1-9][0-9]{0,3})$/.test(v.trim())) return Number(v.trim());
  return null;
}

const show = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
};

function strList(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** Pick the link for a MAC: the only one, or the only non-stacked one. */
function linkFor(mac: string, links: LinkInfo[]): LinkInfo | 'ambiguous' | null {
  const all = links.filter((l) => l.mac === mac);
  if (all.length <= 1) return all[0] ?? null;
  const base = all.filter((l) => !l.stacked);
  return base.length === 1 ? base[0]! : 'ambiguous';
}

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
    return { primary, nics: [], primaryAddresses: null, incomplete: [...incomplete].sort(), skipped };
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

  return { primary, nics: plans, primaryAddresses, incomplete: [...incomplete].sort(), skipped };
}

/**
 * Why a NIC's metadata cannot be the whole truth (null if it can be): every NIC has a private
 * address, and one in an IPv4 subnet has a primary private IPv4. The metadata crawler skips a
 * leaf that failed (e.g. a 404 of local-ipv4s), which must not read as "no addresses".
 */
function incompleteWhy(n: NicMeta): string | null {
  const v4 = strList(n.ipv4s).length;
  const v6 = strList(n.ipv6s).length;
  if (!v4 && !v6) return 'metadata lists no private address for this NIC (partial metadata?); left as is';
  if (!v4 && n.subnet_ipv4_cidr != null) return 'metadata has an IPv4 subnet but no IPv4 address for this NIC (partial metadata?); left as is';
  return null;
}

interface AddressPart {
  subnet4: Prefix | null;
  subnets6: Prefix[];
  primaryIpv4: string | null;
  /** Secondary addresses: in metadata order, all but the first of each family (the DHCP/SLAAC one). */
  addresses: AddressSpec[];
}

/** Subnets and secondary addresses of a NIC. `reportInvalid`: also report addresses that are not valid (nicPlan reports those with its rules). */
function addressPart(n: NicMeta, ifname: string, skip: (what: string, value: unknown, reason: string) => void, reportInvalid: boolean): AddressPart {
  const addresses: AddressSpec[] = [];
  let subnet4: Prefix | null = null;
  if (n.subnet_ipv4_cidr != null) {
    const p = parsePrefix(n.subnet_ipv4_cidr, { family: 4, minLen: 1, maxLen: 30 });
    if (typeof p === 'string') skip('subnet_ipv4_cidr', n.subnet_ipv4_cidr, p);
    else subnet4 = p;
  } else {
    skip('subnet_ipv4_cidr', null, 'missing: no IPv4 routes or secondary addresses for this NIC');
  }
  const subnets6: Prefix[] = [];
  strList(n.subnet_ipv6_cidrs).forEach((c, i) => {
    const p = parsePrefix(c, { family: 6, minLen: 1, maxLen: 128 });
    if (typeof p === 'string') skip(`subnet_ipv6_cidrs[${i}]`, c, p);
    else subnets6.push(p);
  });
  const valid = (raw: unknown, family: Family, what: string): Ip | null => {
    const ip = parseIp(raw, family);
    const why = ip ? notUnicast(ip) : `not an IPv${family} address`;
    if (!ip || why) {
      if (reportInvalid) skip(what, raw, ip ? `not a usable unicast address (${why})` : why!);
      return null;
    }
    return ip;
  };
  const first4 = parseIp(strList(n.ipv4s)[0], 4);
  const primaryIpv4 = first4 && !notUnicast(first4) ? first4.text : null;
  if (subnet4) {
    strList(n.ipv4s).slice(1).forEach((raw, j) => {
      const ip = valid(raw, 4, `ipv4s[${j + 1}]`);
      if (!ip) return;
      if (!contains(subnet4!, ip)) return skip(`ipv4s[${j + 1}]`, raw, `not inside the subnet ${subnet4!.text}; not added as an address`);
      if (ip.value === subnet4!.network || ip.value === (subnet4!.network | ~(-1n << BigInt(32 - subnet4!.len)))) {
        return skip(`ipv4s[${j + 1}]`, raw, `is the network or broadcast address of ${subnet4!.text}`);
      }
      addresses.push({ family: 4, dev: ifname, address: ip.text, prefixlen: subnet4!.len });
    });
  }
  strList(n.ipv6s).slice(1).forEach((raw, j) => {
    const ip = valid(raw, 6, `ipv6s[${j + 1}]`);
    if (!ip) return;
    const sn = subnets6.find((p) => contains(p, ip));
    if (!sn) return skip(`ipv6s[${j + 1}]`, raw, 'inside none of the subnet_ipv6_cidrs; not added as an address');
    addresses.push({ family: 6, dev: ifname, address: ip.text, prefixlen: sn.len });
  });
  return { subnet4, subnets6, primaryIpv4, addresses };
}

function nicPlan(mac: string, n: NicMeta, link: LinkInfo, table: number, dev: number, card: number, input: DesiredInput, skipped: Skip[]): NicPlan {
  const ifname = link.ifname;
  const skip = (what: string, value: unknown, reason: string) => skipped.push({ mac, ifname, what, value: show(value), reason });
  const rules: RuleSpec[] = [];
  const routes: RouteSpec[] = [];
  const seenFrom = new Set<string>();
  const addRule = (family: Family, p: Prefix) => {
    const key = `${family} ${p.text}`;
    if (seenFrom.has(key)) return;
    seenFrom.add(key);
    rules.push({ family, from: p.text, table, priority: table });
  };

  // Subnets.
  const { subnet4, subnets6, primaryIpv4, addresses } = addressPart(n, ifname, skip, false);

  // Addresses → rules (all) and secondary addresses (all but the first).
  const hosts = (list: unknown, family: Family, key: string): Ip[] => {
    const out: Ip[] = [];
    strList(list).forEach((v, i) => {
      const ip = parseIp(v, family);
      if (!ip) return skip(`${key}[${i}]`, v, `not an IPv${family} address`);
      const why = notUnicast(ip);
      if (why) return skip(`${key}[${i}]`, v, `not a usable unicast address (${why})`);
      out.push(ip);
    });
    return out;
  };
  const v4 = hosts(n.ipv4s, 4, 'ipv4s');
  const v6 = hosts(n.ipv6s, 6, 'ipv6s');

  for (const ip of v4) addRule(4, { family: 4, network: ip.value, len: 32, text: `${ip.text}/32` });
  for (const ip of v6) addRule(6, { family: 6, network: ip.value, len: 128, text: `${ip.text}/128` });
  const prefixes = (list: unknown, family: Family, key: string) =>
    strList(list).forEach((v, i) => {
      const p = parsePrefix(v, { family, minLen: family === 4 ? 8 : 16 });
      if (typeof p === 'string') return skip(`${key}[${i}]`, v, p);
      const why = notUnicast({ family, value: p.network, text: '' });
      if (why) return skip(`${key}[${i}]`, v, `not a usable unicast range (${why})`);
      addRule(family, p);
    });
  prefixes(n.ipv4_prefixes, 4, 'ipv4_prefixes');
  prefixes(n.ipv6_prefixes, 6, 'ipv6_prefixes');

  // IPv4 routes: subnet, then default via the lease's router (or the subnet's first host).
  let gateway4: NicPlan['gateway4'] = null;
  if (subnet4) {
    routes.push({ family: 4, table, dst: subnet4.text, dev: ifname, scope: 'link' });
    const leased = input.gateways[ifname];
    const gw = leased === undefined ? null : parseIp(leased, 4);
    if (gw && !notUnicast(gw) && contains(subnet4, gw) && gw.value !== subnet4.network) {
      gateway4 = { address: gw.text, source: 'lease' };
    } else {
      if (leased !== undefined) skip('gateway', leased, `lease router is not a host of ${subnet4.text}; using the subnet's first host`);
      gateway4 = { address: formatIp(4, subnet4.network + 1n), source: 'subnet-first-host' };
    }
    routes.push({ family: 4, table, dst: 'default', gateway: gateway4.address, dev: ifname });
  }

  // IPv6 routes only with a known default router.
  let gateway6: string | null = null;
  if (v6.length || subnets6.length || strList(n.ipv6_prefixes).length) {
    const raw6 = input.gateways6?.[ifname];
    const gw6 = raw6 === undefined ? null : parseIp(raw6, 6);
    if (gw6 && !notUnicast(gw6, true)) {
      gateway6 = gw6.text;
      for (const p of subnets6) routes.push({ family: 6, table, dst: p.text, dev: ifname });
      routes.push({ family: 6, table, dst: 'default', gateway: gateway6, dev: ifname });
    } else {
      skip('ipv6 routes', raw6 ?? null, raw6 === undefined ? 'no IPv6 default router known (no router advertisement yet)' : 'default router is not a unicast IPv6 address');
    }
  }

  return { mac, ifname, up: link.up, table, priority: table, deviceNumber: dev, networkCard: card, primaryIpv4, gateway4, gateway6, rules, routes, addresses };
}

/** Every rule in a desired state. */
export const allRules = (d: DesiredState): RuleSpec[] => d.nics.flatMap((n) => n.rules);
export const allRoutes = (d: DesiredState): RouteSpec[] => d.nics.flatMap((n) => n.routes);
/** Secondary NICs' addresses and the primary's. */
export const allAddresses = (d: DesiredState): AddressSpec[] => addressPlans(d).flatMap((n) => n.addresses);
/** Every NIC whose addresses are managed: the secondary NICs, then the primary. */
export const addressPlans = (d: DesiredState): AddressPlan[] => [...d.nics, ...(d.primaryAddresses ? [d.primaryAddresses] : [])];
