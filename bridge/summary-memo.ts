/**
 * The instance summary a bridge last replied with, kept so callers need no `summary` round trip
 * when nothing since could have changed it.
 *
 * The summary follows the opened datasource, which changes only through calls whose replies carry
 * a summary (open, refresh, refresh_network, rederive, store): each reply's summary is remembered.
 * Calls known not to touch the datasource keep it; any other call, a failed call (a timed-out one
 * may still be running in Python) and close() forget it, so a caller then makes the round trip.
 * What follows which NICs are present now (`macs`, ports' `name`) is as of the remembered reply;
 * routing and the poller's fingerprint match NICs by MAC and do not use those.
 */
import type { Bridge } from './index.js';
import type { InstanceSummary } from './types.js';

/** Bridge calls that leave the datasource (and so the summary) as it was. */
const KEEPS: ReadonlySet<PropertyKey> = new Set<keyof Bridge>(['summary', 'networkConfig', 'hotplugState', 'preview', 'applyNetwork', 'bringUp', 'bringDown', 'probeMacs', 'probeNetwork', 'cloudConfig']);

export interface SummaryMemo {
  /** The summary of the bridge's datasource as the last reply carrying one gave it; undefined: ask. */
  knownSummary(): InstanceSummary | undefined;
}

const isSummary = (v: unknown): v is InstanceSummary => !!v && typeof v === 'object' && Array.isArray((v as InstanceSummary).macs) && typeof (v as InstanceSummary).hotplug === 'object';

/** `b` with every reply's summary remembered (a Proxy: the same methods, plus knownSummary()). */
export function memoSummaries(b: Bridge): Bridge & SummaryMemo {
  let known: InstanceSummary | undefined;
  const wrapped = new Map<PropertyKey, (...args: unknown[]) => unknown>();
  return new Proxy(b as Bridge & SummaryMemo, {
    get(target, prop) {
      if (prop === 'knownSummary') return () => known;
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      let w = wrapped.get(prop);
      if (!w) {
        const fn = v as (...args: unknown[]) => unknown;
        w = (...args: unknown[]) => {
          if (!KEEPS.has(prop)) known = undefined; // changing it, or may be
          const forget = (e: unknown) => {
            known = undefined;
            throw e;
          };
          let p: unknown;
          try {
            p = fn.apply(target, args);
          } catch (e) {
            forget(e);
          }
          return Promise.resolve(p).then((r) => {
            const s = prop === 'summary' ? r : (r as { summary?: unknown } | null)?.summary;
            if (isSummary(s)) known = s;
            return r;
          }, forget);
        };
        wrapped.set(prop, w);
      }
      return w;
    },
  });
}

/** The summary of the bridge's datasource: the remembered one where `b` keeps it, else one round trip. */
export async function currentSummary(b: Bridge): Promise<InstanceSummary> {
  return knownSummary(b) ?? b.summary();
}

/** The remembered summary, if `b` keeps one (undefined for a bridge without memo). */
export function knownSummary(b: Bridge): InstanceSummary | undefined {
  return (b as Partial<SummaryMemo>).knownSummary?.();
}
