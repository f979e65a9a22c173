/**
 * `hotplug routes --explain DEST [--from SRC]`: which rule and table the kernel uses for a packet
 * from SRC to DEST. The kernel answers (`ip route get` for the route and its table, `ip route get
 * fibmatch` for the prefix it matched); the rule is found by walking `ip rule` in priority order
 * the way the kernel does (explainRule is pure).
 */
import { type Family, type Prefix, parseIp, parsePrefix, contains, bits } from './addr.js';
import { type IpRunner, ipJson, IpError } from './run.js';
import { ROUTING_PROTO } from './state.js';
import { UserError } from '../util/errors.js';

export interface ExplainRule {
  priority: number;
  /** As `ip rule` reads: "from 10.0.1.11 lookup 10001", "from all lookup main suppress_prefixlength 0". */
  text: string;
  table: number | null;
  protocol: number;
  ours: boolean;
}

export interface Explanation {
  dest: string;
  from: string | null;
  family: Family;
  /** The rule whose lookup gave the route (null: none matched as far as can be evaluated). */
  rule: ExplainRule | null;
  table: number;
  /** The route the kernel chose: the FIB entry (prefix) and what `ip route get` resolved. */
  route: { dst: string; gateway?: string; dev?: string; prefsrc?: string; type?: string };
  /** Rules ahead of that one whose selectors matched but whose lookup gave nothing (or was suppressed). */
  passed: { rule: ExplainRule; why: string }[];
  /** Rules ahead of it with selectors this explanation does not evaluate (fwmark, uid, oif …). */
  unevaluated: ExplainRule[];
}

type Obj = Record<string, unknown>;
// rtnetlink route types as `ip -N` prints them.
const ROUTE_TYPES: Record<string, string> = { '1': 'unicast', '2': 'local', '3': 'broadcast', '4': 'anycast', '5': 'multicast', '6': 'blackhole', '7': 'unreachable', '8': 'prohibit', '9': 'throw' };
const TABLE_NAMES: Record<number, string> = { 253: 'default', 254: 'main', 255: 'local' };
export const tableName = (t: number | null): string => (t === null ? '-' : TABLE_NAMES[t] ?? String(t));
const num = (v: unknown): number | null => (typeof v === 'number' ? v : typeof v === 'string' && /^[0-9]{1,10}$/.test(v) ? Number(v) : null);
// Keys of `ip -json rule` this explanation understands; any other selector makes a rule unevaluated.
const KNOWN = new Set(['priority', 'src', 'srclen', 'dst', 'dstlen', 'table', 'protocol', 'suppress_prefixlen', 'not', 'iif', 'flags', 'action']);

function selector(r: Obj, key: 'src' | 'dst', family: Family): Prefix | 'all' | null {
  const v = r[key];
  if (v === undefined || v === 'all') return 'all';
  const len = r[`${key}len`] === undefined ? bits(family) : num(r[`${key}len`]);
  const p = parsePrefix(`${String(v)}/${len}`, { family });
  return typeof p === 'string' ? null : p;
}

function ruleOf(r: Obj): ExplainRule {
  const parts = [`from ${r.src === undefined ? 'all' : `${String(r.src)}${r.srclen !== undefined ? `/${String(r.srclen)}` : ''}`}`];
  if (r.dst !== undefined) parts.push(`to ${String(r.dst)}${r.dstlen !== undefined ? `/${String(r.dstlen)}` : ''}`);
  if (r.iif !== undefined) parts.push(`iif ${String(r.iif)}`);
  for (const k of Object.keys(r)) if (!KNOWN.has(k)) parts.push(`${k} ${typeof r[k] === 'object' ? JSON.stringify(r[k]) : String(r[k])}`);
  const table = num(r.table);
  if (table !== null) parts.push(`lookup ${tableName(table)}`);
  else if (r.action !== undefined) parts.push(String(r.action));
  if (r.suppress_prefixlen !== undefined) parts.push(`suppress_prefixlength ${String(r.suppress_prefixlen)}`);
  const protocol = num(r.protocol) ?? 0;
  return { priority: num(r.priority) ?? 0, text: `${r.not !== undefined ? 'not ' : ''}${parts.join(' ')}`, table, protocol, ours: protocol === ROUTING_PROTO };
}

/** Prefix length of a FIB entry as `ip -json route get fibmatch` prints its dst. */
export function fibLength(dst: string, family: Family): number {
  if (dst === 'default') return 0;
  const p = parsePrefix(dst, { family, allowBare: true });
  return typeof p === 'string' ? bits(family) : p.len;
}

/**
 * Walks the rules (as `ip -N -json rule show` lists them, in priority order) for a locally sent
 * packet from `src` (null: no source chosen yet, which only "from all" matches) to `dest`, and
 * finds the one whose lookup in `table` produced a route of prefix length `fibLen`.
 */
export function explainRule(rules: unknown, family: Family, dest: string, src: string | null, table: number, fibLen: number): Pick<Explanation, 'rule' | 'passed' | 'unevaluated'> {
  const passed: Explanation['passed'] = [];
  const unevaluated: ExplainRule[] = [];
  const d = parseIp(dest, family);
  const s = src === null ? null : parseIp(src, family);
  const list = (Array.isArray(rules) ? rules : []).filter((r): r is Obj => typeof r === 'object' && r !== null).sort((a, b) => (num(a.priority) ?? 0) - (num(b.priority) ?? 0));
  for (const r of list) {
    const rule = ruleOf(r);
    if (Object.keys(r).some((k) => !KNOWN.has(k)) || (r.iif !== undefined && r.iif !== 'lo')) {
      // A locally sent packet comes from "iif lo"; other selectors (fwmark, uidrange, oif, l3mdev …) are not evaluated.
      if (r.iif === undefined || Object.keys(r).some((k) => !KNOWN.has(k))) unevaluated.push(rule);
      continue;
    }
    const from = selector(r, 'src', family);
    const to = selector(r, 'dst', family);
    if (from === null || to === null || !d) continue;
    const fromOk = from === 'all' || (s !== null && contains(from, s));
    const toOk = to === 'all' || contains(to, d);
    if ((fromOk && toOk) === (r.not !== undefined)) continue;
    if (rule.table === null) return { rule, passed, unevaluated }; // unreachable, blackhole, prohibit …
    const suppress = num(r.suppress_prefixlen);
    if (rule.table !== table) {
      const why = suppress !== null ? `table ${tableName(rule.table)} has no route there longer than /${suppress} (suppressed: suppress_prefixlength ${suppress})` : `no usable route in table ${tableName(rule.table)}`;
      passed.push({ rule, why });
      continue;
    }
    if (suppress !== null && fibLen <= suppress) {
      passed.push({ rule, why: `the route found there (prefix length ${fibLen}) is suppressed (length <= ${suppress})` });
      continue;
    }
    return { rule, passed, unevaluated };
  }
  return { rule: null, passed, unevaluated };
}

/** Validates the addresses and asks the kernel. Throws a one-line Error on bad input or a failed lookup. */
export async function explain(ip: IpRunner, dest: string, from?: string): Promise<Explanation> {
  const d = parseIp(dest);
  if (!d) throw new UserError(`--explain: ${JSON.stringify(dest)} is not an IPv4 or IPv6 address`);
  let s: ReturnType<typeof parseIp> = null;
  if (from !== undefined) {
    s = parseIp(from);
    if (!s) throw new UserError(`--from: ${JSON.stringify(from)} is not an IPv4 or IPv6 address`);
    if (s.family !== d.family) throw new UserError(`--from ${s.text} and --explain ${d.text} are not of the same address family`);
  }
  const fam = d.family === 4 ? '-4' : '-6';
  const sel = [d.text, ...(s ? ['from', s.text] : [])];
  const get = async (args: string[]): Promise<Obj> => {
    try {
      const j = await ipJson(ip, [fam, 'route', 'get', ...args]);
      const o = Array.isArray(j) ? j[0] : undefined;
      if (typeof o !== 'object' || o === null) throw new Error(`ip route get ${args.join(' ')}: no answer`);
      return o as Obj;
    } catch (e) {
      if (e instanceof IpError) throw new UserError(`ip route get ${args.join(' ')}: ${(e.result.stderr || e.result.stdout).trim().split('\n').pop() ?? `exit ${e.result.exitCode}`}`);
      throw e;
    }
  };
  const [got, fib, rules] = await Promise.all([get(sel), get(['fibmatch', ...sel]), ipJson(ip, [fam, 'rule', 'show'])]);
  const table = num(fib.table) ?? num(got.table) ?? 254;
  const fibDst = typeof fib.dst === 'string' ? fib.dst : d.text;
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const type = str(got.type);
  const route = { dst: fibDst, gateway: str(got.gateway), dev: str(got.dev), prefsrc: str(got.prefsrc), type: type === undefined ? undefined : ROUTE_TYPES[type] ?? type };
  for (const k of Object.keys(route) as (keyof typeof route)[]) if (route[k] === undefined) delete route[k];
  return { dest: d.text, from: s?.text ?? null, family: d.family, table, route, ...explainRule(rules, d.family, d.text, s?.text ?? null, table, fibLength(fibDst, d.family)) };
}

export function explainText(e: Explanation): string {
  const out = [`${e.dest}${e.from ? ` from ${e.from}` : ' (source chosen by the kernel)'}:`];
  out.push(e.rule ? `  rule:  ${e.rule.priority}: ${e.rule.text}${e.rule.ours ? ` (ours, protocol ${ROUTING_PROTO})` : ''}` : '  rule:  none matched that could be evaluated');
  out.push(`  table: ${tableName(e.table)}${TABLE_NAMES[e.table] ? ` (${e.table})` : ''}`);
  const r = e.route;
  out.push(`  route: ${r.type && r.type !== 'unicast' ? `${r.type} ` : ''}${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${r.prefsrc ? ` src ${r.prefsrc}` : ''}`);
  if (e.passed.length) {
    out.push('  passed over:');
    for (const p of e.passed) out.push(`    ${p.rule.priority}: ${p.rule.text}: ${p.why}`);
  }
  if (e.unevaluated.length) {
    out.push('  not evaluated (selectors other than from/to/iif lo):');
    for (const u of e.unevaluated) out.push(`    ${u.priority}: ${u.text}`);
  }
  return out.join('\n') + '\n';
}
