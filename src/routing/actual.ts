/**
 * The system's current rules, routes, addresses and links, from `ip -N -json` (numeric
 * tables/protocols so names in rt_tables/rt_protos cannot change the parse). The parse
 * functions are pure; readActual() takes an injected runner (use systemIp({netns}) for a namespace).
 */
import { type Family, parseIp, parsePrefix, bits } from './addr.js';
import type { LinkInfo } from './desired.js';
import { type IpRunner, ipJson, IpError } from './run.js';
import { oneLine } from '../util/errors.js';

export interface ActualRule {
  family: Family;
  priority: number;
  /** Canonical "addr/len", or "all". */
  from: string;
  /** Destination selector, canonical "network/len" (only when the rule has one). */
  to?: string;
  /** Table looked up; null for rules that do something else (goto, unreachable …). */
  table: number | null;
  /** rtnetlink protocol (0 = unspecified, what a plain `ip rule add` sets). */
  protocol: number;
  /** Has selectors or actions besides from/lookup/priority (fwmark, iif, not, suppress_* …). */
  extra: boolean;
  /** suppress_prefixlength, only on a rule whose sole extra is that (the main-table rule ahead of ours). */
  suppress?: number;
}

export interface ActualRoute {
  family: Family;
  table: number;
  /** "default" or canonical "network/len". */
  dst: string;
  gateway?: string;
  dev?: string;
  protocol: number;
  /** Numeric scope when printed (253 = link). */
  scope?: number;
  metric?: number;
  /** A unicast route with a single next hop and nothing unusual (what we would add). */
  plain: boolean;
}

export interface ActualAddress {
  family: Family;
  dev: string;
  address: string;
  prefixlen: number;
}

export interface ActualState {
  rules: ActualRule[];
  routes: ActualRoute[];
  addresses: ActualAddress[];
  links: LinkInfo[];
  /** False when the kernel has no IPv6 (rules/routes could not be read): plan no IPv6 changes. */
  ipv6: boolean;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : []);
const num = (v: unknown, dflt: number | null = null): number | null => {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'string' && /^[0-9]{1,10}$/.test(v)) return Number(v);
  return dflt;
};

const RULE_PLAIN_KEYS = new Set(['priority', 'src', 'srclen', 'table', 'protocol', 'flags']);

/** `ip -N -json -4|-6 rule show`. Unparseable entries are dropped (they are never ours). */
export function parseRules(json: unknown, family: Family): ActualRule[] {
  const out: ActualRule[] = [];
  for (const r of arr(json)) {
    const priority = num(r.priority);
    if (priority === null) continue;
    let from: string;
    if (r.src === undefined || r.src === 'all') from = 'all';
    else {
      const len = r.srclen === undefined ? bits(family) : num(r.srclen);
      const p = parsePrefix(`${String(r.src)}/${len}`, { family });
      if (typeof p === 'string') continue;
      from = p.text;
    }
    const flagged = Array.isArray(r.flags) && r.flags.length > 0;
    // A destination selector is one of ours (the cross-subnet rules), not an "extra".
    let to: string | undefined;
    if (r.dst !== undefined) {
      const p = parsePrefix(`${String(r.dst)}/${r.dstlen === undefined ? bits(family) : num(r.dstlen)}`, { family });
      if (typeof p === 'string') continue;
      to = p.text;
    }
    const others = Object.keys(r).filter((k) => !RULE_PLAIN_KEYS.has(k) && k !== 'dst' && k !== 'dstlen');
    const extra = others.length > 0 || flagged;
    const rule: ActualRule = { family, priority, from, ...(to !== undefined ? { to } : {}), table: num(r.table), protocol: num(r.protocol, 0) ?? 0, extra };
    const suppress = num(r.suppress_prefixlen);
    if (!flagged && others.length === 1 && others[0] === 'suppress_prefixlen' && suppress !== null) rule.suppress = suppress;
    out.push(rule);
  }
  return out;
}

const ROUTE_PLAIN_KEYS = new Set(['dst', 'gateway', 'dev', 'table', 'protocol', 'scope', 'metric', 'flags', 'pref', 'prefsrc', 'expires']);

/** `ip -N -json -4|-6 route show table all`. The main table (254) is the one `ip` leaves unnamed. */
export function parseRoutes(json: unknown, family: Family): ActualRoute[] {
  const out: ActualRoute[] = [];
  for (const r of arr(json)) {
    let dst: string;
    if (r.dst === 'default') dst = 'default';
    else {
      const p = parsePrefix(r.dst, { family, allowBare: true });
      if (typeof p === 'string') continue;
      dst = p.text;
    }
    const gw = r.gateway === undefined ? undefined : parseIp(r.gateway, family)?.text;
    if (r.gateway !== undefined && gw === undefined) continue;
    const flags = Array.isArray(r.flags) ? r.flags.map(String) : [];
    // A route learnt from a router advertisement carries the RA's hop limit as a metric: still plain.
    const raMetrics = (k: string) => k === 'metrics' && Array.isArray(r.metrics) && r.metrics.every((m) => isObj(m) && Object.keys(m).every((x) => x === 'hoplimit'));
    const plain = Object.keys(r).every((k) => ROUTE_PLAIN_KEYS.has(k) || raMetrics(k)) && flags.every((f) => f === 'linkdown');
    out.push({
      family,
      table: num(r.table, 254) ?? 254,
      dst,
      gateway: gw,
      dev: typeof r.dev === 'string' ? r.dev : undefined,
      protocol: num(r.protocol, 0) ?? 0,
      scope: num(r.scope) ?? undefined,
      metric: num(r.metric) ?? undefined,
      plain,
    });
  }
  return out;
}

/** `ip -N -json addr show`: addresses (global and site scope; link-local ones are the kernel's). */
export function parseAddresses(json: unknown): ActualAddress[] {
  const out: ActualAddress[] = [];
  for (const l of arr(json)) {
    if (typeof l.ifname !== 'string') continue;
    for (const a of arr(l.addr_info)) {
      const family: Family | null = a.family === 'inet' ? 4 : a.family === 'inet6' ? 6 : null;
      if (!family) continue;
      const ip = parseIp(a.local, family);
      const len = num(a.prefixlen);
      if (!ip || len === null || len > bits(family)) continue;
      out.push({ family, dev: l.ifname, address: ip.text, prefixlen: len });
    }
  }
  return out;
}

/** Links with a MAC, from `ip -json addr show` or `ip -json link show`. */
export function parseLinks(json: unknown): LinkInfo[] {
  const out: LinkInfo[] = [];
  for (const l of arr(json)) {
    if (typeof l.ifname !== 'string' || typeof l.address !== 'string') continue;
    const mac = l.address.toLowerCase();
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac) || mac === '00:00:00:00:00:00') continue;
    const flags = Array.isArray(l.flags) ? l.flags.map(String) : [];
    out.push({ ifname: l.ifname, mac, up: flags.includes('UP'), stacked: typeof l.link === 'string' || typeof l.master === 'string' });
  }
  return out;
}

export async function readActual(ip: IpRunner): Promise<ActualState> {
  const [r4, rt4, addr] = await Promise.all([ipJson(ip, ['-4', 'rule', 'show']), ipJson(ip, ['-4', 'route', 'show', 'table', 'all']), ipJson(ip, ['addr', 'show'])]);
  let ipv6 = true;
  let r6: unknown = [];
  let rt6: unknown = [];
  try {
    [r6, rt6] = await Promise.all([ipJson(ip, ['-6', 'rule', 'show']), ipJson(ip, ['-6', 'route', 'show', 'table', 'all'])]);
  } catch (e) {
    // ipv6.disable=1: "Address family not supported by protocol". Anything else is a real failure.
    if (!(e instanceof IpError) || !/not supported|unsupported/i.test(oneLine(e))) throw e;
    ipv6 = false;
  }
  return {
    rules: [...parseRules(r4, 4), ...parseRules(r6, 6)],
    routes: [...parseRoutes(rt4, 4), ...parseRoutes(rt6, 6)],
    addresses: parseAddresses(addr),
    links: parseLinks(addr),
    ipv6,
  };
}

/** The gateway of a main-table default route through `ifname` (what dhclient or RA installed). */
export function mainDefaultVia(routes: ActualRoute[], family: Family, ifname: string): string | undefined {
  const r = routes
    .filter((x) => x.family === family && x.table === 254 && x.dst === 'default' && x.dev === ifname && x.gateway && x.plain)
    .sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0))[0];
  return r?.gateway;
}

/** The IPv4 router of an interface's DHCP lease, as the host's network stack knows it. */
export type LeaseGateway = (ifname: string) => Promise<string | undefined>;

// Interfaces with names outside this set get no gateway at all (as before the lease lookup
// moved to the network stack), so the plan for such a NIC does not depend on who reads leases.
const IFNAME_RE = /^[A-Za-z0-9_.:@-]{1,15}$/;

/**
 * Per-interface gateways: IPv4 from the DHCP lease (then a main-table default route
 * through the interface), IPv6 from the RA default route in main. Without `leaseGateway`
 * only the main table is consulted; a lease that cannot be read counts as none.
 */
export async function readGateways(
  ifnames: string[],
  actual: ActualState,
  leaseGateway?: LeaseGateway,
): Promise<{ gateways: Record<string, string | undefined>; gateways6: Record<string, string | undefined> }> {
  const gateways: Record<string, string | undefined> = {};
  const gateways6: Record<string, string | undefined> = {};
  for (const ifname of ifnames) {
    if (!IFNAME_RE.test(ifname) || ifname === '.' || ifname === '..') continue;
    const lease = leaseGateway ? await leaseGateway(ifname).catch(() => undefined) : undefined;
    const gw = lease ?? mainDefaultVia(actual.routes, 4, ifname);
    if (gw) gateways[ifname] = gw;
    const gw6 = mainDefaultVia(actual.routes, 6, ifname);
    if (gw6) gateways6[ifname] = gw6;
  }
  return { gateways, gateways6 };
}
