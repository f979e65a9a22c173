/**
 * One NIC's part of the desired state (pure): validating its metadata, its secondary addresses,
 * and for a secondary NIC its table's rules and routes. desired.ts decides which NICs get one.
 */
import type { NicMeta } from '../../bridge/index.js';
import { type Family, type Ip, type Prefix, parseIp, parsePrefix, contains, notUnicast, formatIp } from './addr.js';
import { MAX_INDEX, NO_ROUTER6, type LinkInfo, type DesiredInput, type RuleSpec, type RouteSpec, type AddressSpec, type NicPlan, type Skip } from './spec.js';

export function smallInt(v: unknown): number | null {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_INDEX) return v;
  if (typeof v === 'string' && /^(0|[1-9][0-9]{0,3})$/.test(v.trim())) return Number(v.trim());
  return null;
}

export const show = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
};

export function strList(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** Pick the link for a MAC: the only one, or the only non-stacked one. */
export function linkFor(mac: string, links: LinkInfo[]): LinkInfo | 'ambiguous' | null {
  const all = links.filter((l) => l.mac === mac);
  if (all.length <= 1) return all[0] ?? null;
  const base = all.filter((l) => !l.stacked);
  return base.length === 1 ? base[0]! : 'ambiguous';
}


/**
 * Why a NIC's metadata cannot be the whole truth (null if it can be): every NIC has a private
 * address, and one in an IPv4 subnet has a primary private IPv4. The metadata crawler skips a
 * leaf that failed (e.g. a 404 of local-ipv4s), which must not read as "no addresses".
 */
export function incompleteWhy(n: NicMeta): string | null {
  const v4 = strList(n.ipv4s).length;
  const v6 = strList(n.ipv6s).length;
  if (!v4 && !v6) return 'metadata lists no private address for this NIC (partial metadata?); left as is';
  if (!v4 && n.subnet_ipv4_cidr != null) return 'metadata has an IPv4 subnet but no IPv4 address for this NIC (partial metadata?); left as is';
  return null;
}

export interface AddressPart {
  subnet4: Prefix | null;
  subnets6: Prefix[];
  primaryIpv4: string | null;
  /** Secondary addresses: in metadata order, all but the first of each family (the DHCP/SLAAC one). */
  addresses: AddressSpec[];
}

/** Subnets and secondary addresses of a NIC. `reportInvalid`: also report addresses that are not valid (nicPlan reports those with its rules). */
export function addressPart(n: NicMeta, ifname: string, skip: (what: string, value: unknown, reason: string) => void, reportInvalid: boolean): AddressPart {
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

export function nicPlan(mac: string, n: NicMeta, link: LinkInfo, table: number, dev: number, card: number, input: DesiredInput, skipped: Skip[]): NicPlan {
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
      skip('ipv6 routes', raw6 ?? null, raw6 === undefined ? NO_ROUTER6 : 'default router is not a unicast IPv6 address');
    }
  }

  return { mac, ifname, up: link.up, table, priority: table, deviceNumber: dev, networkCard: card, primaryIpv4, gateway4, gateway6, rules, routes, addresses };
}
