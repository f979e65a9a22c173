/** Pure helpers of the metadata poller: the fingerprint of the network metadata, a description of a change, the poll delay. */
import { createHash } from 'node:crypto';
import type { InstanceSummary, PortMeta } from '../../bridge/index.js';
import { backoffDelay, jittered } from '../util/backoff.js';

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v as Record<string, unknown>)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/**
 * What the network subtree of the metadata says, as one hash: every NIC with its addresses,
 * prefixes, subnets and indexes, and the primary MAC; plus, when the bridge gives them, the
 * datasource-agnostic ports (what OpenStack's network_data.json says, through cloud-init's own
 * conversion). Equal hashes = nothing to do.
 */
export function fingerprint(s: Pick<InstanceSummary, 'nics' | 'primary_mac'> & Partial<Pick<InstanceSummary, 'ports'>>): string {
  const doc: Record<string, unknown> = { primary: s.primary_mac ?? null, nics: s.nics ?? {} };
  // Only when there are ports, so a summary without them hashes as before.
  if (s.ports && Object.keys(s.ports).length) doc.ports = portsView(s.ports);
  return createHash('sha256')
    .update(JSON.stringify(canonical(doc)))
    .digest('hex')
    .slice(0, 16);
}

/**
 * What of a port is metadata (not whether its NIC is on this system right now: `name` is null
 * for an absent one, and a device event, not the poller, handles that).
 */
function portsView(ports: Record<string, PortMeta>): Record<string, Omit<PortMeta, 'name'>> {
  return Object.fromEntries(Object.entries(ports).map(([m, p]) => [m, { ...p, name: undefined } as Omit<PortMeta, 'name'>]));
}

/** Port changes (datasources without EC2's per-NIC metadata) in describeChange's words. */
function describePorts(a: Record<string, PortMeta>, b: Record<string, PortMeta>, skip: Set<string>): string[] {
  const out: string[] = [];
  for (const mac of Object.keys(b)) if (!a[mac] && !skip.has(mac)) out.push(`+nic ${mac}`);
  for (const mac of Object.keys(a)) if (!b[mac] && !skip.has(mac)) out.push(`-nic ${mac}`);
  for (const mac of Object.keys(b)) {
    const x = a[mac];
    const y = b[mac]!;
    if (!x || skip.has(mac)) continue;
    const n = out.length;
    for (const [k, xs, ys] of [
      ['ipv4', x.ipv4, y.ipv4],
      ['ipv6', x.ipv6, y.ipv6],
    ] as const) {
      const before = new Set(xs.map((v) => `${v.address}/${v.prefixlen}`));
      const after = new Set(ys.map((v) => `${v.address}/${v.prefixlen}`));
      for (const v of after) if (!before.has(v)) out.push(`+${k} ${v} on ${mac}`);
      for (const v of before) if (!after.has(v)) out.push(`-${k} ${v} on ${mac}`);
    }
    if (out.length === n && JSON.stringify(canonical(portsView({ [mac]: x }))) !== JSON.stringify(canonical(portsView({ [mac]: y })))) out.push(`~nic ${mac}`);
  }
  return out;
}

/** Short human description of what changed between two summaries (for the log). */
export function describeChange(
  a: (Pick<InstanceSummary, 'nics'> & Partial<Pick<InstanceSummary, 'ports'>>) | undefined,
  b: Pick<InstanceSummary, 'nics'> & Partial<Pick<InstanceSummary, 'ports'>>,
): string {
  const before = a?.nics ?? {};
  const after = b.nics ?? {};
  const out: string[] = [];
  // NICs EC2's metadata describes are reported from it; the ports of the others.
  out.push(...describePorts(a?.ports ?? {}, b.ports ?? {}, new Set([...Object.keys(before), ...Object.keys(after)])));
  for (const mac of Object.keys(after)) if (!before[mac]) out.push(`+nic ${mac}`);
  for (const mac of Object.keys(before)) if (!after[mac]) out.push(`-nic ${mac}`);
  for (const mac of Object.keys(after)) {
    const x = before[mac];
    const y = after[mac]!;
    if (!x) continue;
    const ips = (l: string[] | undefined) => new Set(l ?? []);
    for (const [k, xs, ys] of [
      ['ipv4', ips(x.ipv4s), ips(y.ipv4s)],
      ['ipv6', ips(x.ipv6s), ips(y.ipv6s)],
      ['prefix4', ips(x.ipv4_prefixes), ips(y.ipv4_prefixes)],
      ['prefix6', ips(x.ipv6_prefixes), ips(y.ipv6_prefixes)],
    ] as const) {
      for (const v of ys) if (!xs.has(v)) out.push(`+${k} ${v} on ${mac}`);
      for (const v of xs) if (!ys.has(v)) out.push(`-${k} ${v} on ${mac}`);
    }
    if (JSON.stringify(canonical(x)) !== JSON.stringify(canonical(y)) && !out.some((o) => o.endsWith(mac))) out.push(`~nic ${mac}`);
  }
  return out.join(', ') || 'metadata changed';
}

/**
 * Poll delay: the interval ±20% while polls succeed; after consecutive errors the project's backoff
 * (growing from twice the interval, capped at capMs, full jitter) but never sooner than the interval.
 */
export function pollDelay(intervalMs: number, errors: number, capMs = 300_000, rnd: () => number = Math.random): number {
  if (errors <= 0) return Math.min(capMs, jittered(intervalMs, 0.2, rnd));
  return Math.min(capMs, Math.max(intervalMs, backoffDelay(errors, { initialMs: intervalMs * 2, maxMs: capMs }, rnd)));
}
