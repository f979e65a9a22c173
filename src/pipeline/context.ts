/**
 * What every stage of one batch shares: the dependencies, the config as the batch started, the
 * crawl/probe counters that go into each event's record, and the one way to record an event.
 */
import type { Config } from '../config.js';
import type { HotplugEvent } from '../events/event.js';
import type { EventRecord } from '../record/index.js';
import type { PipelineDeps } from './deps.js';

export interface BatchContext {
  deps: PipelineDeps;
  cfg: Config;
  counters: { crawls: number; probes: number };
  /** Whether the datasource answers cheap MAC probes (learned once, kept across batches). */
  probe: { works: boolean };
}

export function newContext(deps: PipelineDeps, probe: { works: boolean }): BatchContext {
  return { deps, cfg: deps.config(), counters: { crawls: 0, probes: 0 }, probe };
}

/** Record one event's outcome (log line, log file, recent list) with the batch's counters. */
export async function recordEvent(ctx: BatchContext, ev: HotplugEvent, result: EventRecord['result'], reason?: string): Promise<void> {
  const rec: EventRecord = {
    action: ev.action,
    iface: ev.ifname,
    mac: ev.mac,
    result,
    reason,
    crawls: ctx.counters.crawls,
    probes: ctx.counters.probes,
    duration_ms: Math.max(0, Date.now() - ev.time),
    time: new Date().toISOString(),
  };
  await ctx.deps.records.event(rec);
  ctx.deps.onRecord?.(rec);
}
