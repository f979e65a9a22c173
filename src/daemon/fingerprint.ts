/** Pure helpers of the metadata poller: the fingerprint of the network metadata, a description of a change, the poll delay. */
import { createHash } from 'node:crypto';
import type { InstanceSummary } from '../../bridge/index.js';
import { backoffDelay } from '../util/backoff.js';

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
 * prefixes, subnets and indexes, and the primary MAC. Equal hashes = nothing to do.
 */
export function fingerprint(s: Pick<InstanceSummary, 'nics' | 'primary_mac'>): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical({ primary: s.primary_mac ?? null, nics: s.nics ?? {} })))
    .digest('hex')
    .slice(0, 16);
}

/** Short human description of what changed between two summaries (for the log). */
export function describeChange(a: Pick<InstanceSummary, 'nics'> | undefined, b: Pick<InstanceSummary, 'nics'>): string {
  const before = a?.nics ?? {};
  const after = b.nics ?? {};
  const out: string[] = [];
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

/** A schedule's jitter around a base: base × (1 ± spread), so that many hosts do not poll in step. */
export function jittered(baseMs: number, spread = 0.2, rnd: () => number = Math.random): number {
  return Math.round(baseMs * (1 - spread + 2 * spread * rnd()));
}

/**
 * Poll delay: the interval ±20% while polls succeed; after consecutive errors the project's backoff
 * (growing from twice the interval, capped at capMs, full jitter) but never sooner than the interval.
 */
export function pollDelay(intervalMs: number, errors: number, capMs = 300_000, rnd: () => number = Math.random): number {
  if (errors <= 0) return Math.min(capMs, jittered(intervalMs, 0.2, rnd));
  return Math.min(capMs, Math.max(intervalMs, backoffDelay(errors, { initialMs: intervalMs * 2, maxMs: capMs }, rnd)));
}
