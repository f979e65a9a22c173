/**
 * The await-metadata + configure stage for added NICs: one crawl of the network subtree; while
 * metadata does not list a NIC's MAC yet, cheap probes every ~150 ms (each add's budget counts from
 * its own kernel event), and one more crawl + configure as soon as any appears. Adds still waiting
 * when new events arrive stay queued: the caller coalesces them with the newcomers.
 */
import type { Bridge, InstanceSummary, NetInterface } from '../../bridge/index.js';
import { isBridgeFailure } from '../../bridge/manager.js';
import type { HotplugEvent } from '../events/event.js';
import { recordEvent, type BatchContext } from './context.js';
import { configure } from './configure.js';
import { routesStage } from './routes.js';
import type { StageResult } from './remove.js';
import { backoffDelay, jittered } from '../util/backoff.js';
import { isUnsafePath } from '../util/atomic.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';

/**
 * The gap between two cheap MAC probes: PROBE_EVERY_MS ± 10 %. Not the full-jitter backoff of
 * crawls: a gap drawn from [0, cap] let the wait after metadata appeared be as long as the cap
 * (250 ms) while probing more often (a mean gap of half the cap); one instance probing its own
 * metadata service has no herd to spread. So a NIC is configured within a gap of its metadata
 * appearing, at about 6–7 requests a second while it lags.
 */
export const PROBE_EVERY_MS = 150;

export function probeGapMs(maxMs: number, rnd: () => number = Math.random): number {
  return jittered(Math.min(PROBE_EVERY_MS, maxMs), 0.1, rnd);
}

/**
 * Why metadata's entry for the NIC with `mac` was refused (invalid values), if it was and the NIC
 * has no usable config: the entry under its MAC, or an entry under another key whose `mac` leaf
 * names it.
 */
export function refusedFor(mac: string, summary: InstanceSummary, present: Set<string>): string | undefined {
  if (present.has(mac)) return undefined; // refused, but it keeps its previous metadata
  const direct = summary.rejected_nics?.[mac];
  if (direct) return direct;
  for (const [k, e] of Object.entries(summary.rejected_entries ?? {})) {
    if (e.mac === mac && k !== mac) return `its entry ${JSON.stringify(k)}: ${e.why}`;
  }
  return undefined;
}

/** A NIC's device index from metadata: EC2's device-number, else the datasource-agnostic port's index. */
export function deviceIndexOf(summary: InstanceSummary, mac: string): number | undefined {
  const dn = Number(summary.nics[mac]?.device_number ?? summary.ports?.[mac]?.index ?? NaN);
  return Number.isSafeInteger(dn) && dn >= 0 ? dn : undefined;
}

/** Why waiting cannot help: the metadata source is a config drive, written once at boot. */
export const staticReason = (mac: string, source: string | undefined): string =>
  `metadata is static (${source ?? 'config drive'}: written once at boot, never for a NIC attached later) and does not list MAC ${mac}; left unconfigured (configdrive.metadata_fallback lets it ask the metadata service)`;

/** MACs of the interfaces a config describes. */
export const macsOf = (interfaces: readonly NetInterface[]): Set<string> => new Set(interfaces.flatMap((i) => (i.mac ? [i.mac] : [])));

export async function addStage(ctx: BatchContext, b: Bridge, adds: HotplugEvent[], claimedIds: Set<string>): Promise<StageResult> {
  const { deps, cfg } = ctx;
  const pending = new Map<string, HotplugEvent>();
  const handled: string[] = [];
  let failed = false;
  const done = async (ev: HotplugEvent, result: 'configured' | 'failed' | 'ignored', reason?: string): Promise<void> => {
    if (ev.mac) pending.delete(ev.mac);
    handled.push(ev.id);
    if (result !== 'configured') failed = true;
    await recordEvent(ctx, ev, result, reason);
  };
  for (const ev of adds) {
    if (ev.mac) pending.set(ev.mac, ev);
    else await done(ev, 'failed', 'no MAC known for the interface');
  }
  const budgetMs = cfg.retry.budget_seconds * 1000;
  // Keys of metadata entries that are not MACs, as of the last crawl (or the probe that asked
  // for it): a probe listing a new one asks for a crawl, since no MAC of ours may ever appear.
  const seenOthers = new Set<string>();

  const crawlAndConfigure = async (): Promise<void> => {
    // The network subtree is all a NIC needs; a full crawl only where that is unsupported.
    const net = await b.refreshNetwork();
    const r = net.supported ? net : await b.refresh();
    ctx.counters.crawls++;
    const present = macsOf(r.interfaces);
    for (const ev of [...pending.values()]) {
      const why = refusedFor(ev.mac!, r.summary, present);
      if (why) await done(ev, 'failed', `metadata refused: ${why}`);
    }
    // Entries whose key is no MAC at all can never match a device. When there are at least as
    // many of them as added NICs metadata has no valid entry for, those NICs will never appear
    // (metadata is malformed for them): fail now, with the refusal, instead of after the budget.
    const entries = Object.entries(r.summary.rejected_entries ?? {});
    for (const [k, e] of entries) if (!e.key_is_mac) seenOthers.add(k);
    const orphans = entries.filter(([, e]) => !e.key_is_mac && !e.mac);
    const unlisted = [...pending.values()].filter((ev) => !present.has(ev.mac!) && !(ev.mac! in r.summary.nics));
    if (unlisted.length && orphans.length >= unlisted.length) {
      const desc = orphans.map(([k, e]) => `${JSON.stringify(k)}: ${e.why}`).join('; ');
      for (const ev of unlisted) await done(ev, 'failed', `metadata refused: it has no valid entry for MAC ${ev.mac}, only entries no device can match (${desc})`);
    }
    const ready = [...pending.values()].filter((ev) => present.has(ev.mac!));
    if (r.summary.metadata_static) {
      // A config drive never learns of a NIC attached after boot: say so now, not after the budget.
      for (const ev of [...pending.values()]) if (!present.has(ev.mac!)) await done(ev, 'ignored', staticReason(ev.mac!, r.summary.metadata_source));
    }
    if (!ready.length) return;
    let failedUp: string[];
    try {
      failedUp = await configure(ctx, b, r, { persist: true, bringUp: ready.map((ev) => ev.ifname) });
    } catch (e) {
      // A planted symlink (or a directory …) where we store the config: no retry can fix that.
      if (!isUnsafePath(e)) throw e;
      for (const ev of ready) await done(ev, 'failed', oneLine(e));
      return;
    }
    await routesStage(ctx, r.summary, true);
    for (const ev of ready) {
      if (failedUp.includes(ev.ifname)) {
        await done(ev, 'failed', 'the network activator failed to bring it up');
        continue;
      }
      const index = deviceIndexOf(r.summary, ev.mac!);
      await deps.records.remember(ev.ifname, { mac: ev.mac!, addedAt: Date.now(), deviceNumber: index });
      // No primary named by metadata and this NIC is its first port: it replaced the primary (the
      // instance's first port detached and a new one attached, cloud-init #3463). Say so.
      const primary = !r.summary.primary_mac && index === 0 ? `the new primary NIC (first port in metadata): main table and default route` : undefined;
      if (primary) log('info', 'a hot-added NIC is the new primary', { iface: ev.ifname, mac: ev.mac });
      await done(ev, 'configured', primary);
    }
  };

  if (pending.size) {
    try {
      await crawlAndConfigure();
    } catch (e) {
      // A dead or stuck Python is not "metadata lagging": leave, the events stay queued.
      if (isBridgeFailure(e)) throw e;
      log('warn', 'refresh or apply failed; will retry', { error: oneLine(e) });
    }
  }
  for (let attempt = 1; pending.size; attempt++) {
    // Give up on adds whose own budget (from their kernel event) is spent.
    for (const ev of [...pending.values()]) {
      if (Date.now() - ev.time >= budgetMs) await done(ev, 'ignored', `MAC ${ev.mac} not in metadata after ${cfg.retry.budget_seconds}s; left unconfigured`);
    }
    if (!pending.size) break;
    const deadline = Math.min(...[...pending.values()].map((ev) => ev.time + budgetMs));
    // A probe is one small request, so poll often (probeGapMs); full crawls happen only when a
    // probe shows a MAC, or, when probing is unsupported or the service fails, with the configured
    // backoff up to max_ms.
    const gap = ctx.probe.works ? probeGapMs(cfg.retry.max_ms) : backoffDelay(attempt, { initialMs: cfg.retry.initial_ms, maxMs: cfg.retry.max_ms });
    await deps.sleep(Math.min(Math.max(0, deadline - Date.now()), gap));
    // New events queued meanwhile: return so the caller coalesces them with what is pending.
    if ((await deps.queue.list()).some((ev) => !claimedIds.has(ev.id))) break;
    try {
      const probe = await b.probeMacs(1);
      ctx.counters.probes++;
      ctx.probe.works = probe.supported;
      const newOthers = probe.others.filter((k) => !seenOthers.has(k));
      newOthers.forEach((k) => seenOthers.add(k)); // one crawl per new entry, even if the crawl drops it
      if (probe.static) {
        for (const ev of [...pending.values()]) if (!probe.macs.includes(ev.mac!)) await done(ev, 'ignored', staticReason(ev.mac!, undefined));
      }
      if (!probe.supported || [...pending.keys()].some((m) => probe.macs.includes(m)) || newOthers.length) await crawlAndConfigure();
    } catch (e) {
      if (isBridgeFailure(e)) throw e;
      ctx.probe.works = false;
      log('warn', 'metadata not reachable; will retry', { error: oneLine(e), attempt });
    }
  }
  return { handled, failed };
}
