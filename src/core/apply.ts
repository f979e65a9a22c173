/**
 * Apply the instance's network config through cloud-init's distro (renderer +
 * activator, bring_up=True), refreshing metadata first unless told not to.
 */
import type { Bridge, NetworkConfig, PreviewFile } from '../../bridge/index.js';
import { crawl, persist } from './refresh.js';
import { recordApply } from './last-apply.js';
import { log, since } from '../util/log.js';
import { oneLine, UserError } from '../util/errors.js';

export interface ApplyOptions {
  refresh: boolean;
  dryRun: boolean;
}

export interface ApplyResult {
  networkConfig: NetworkConfig;
  refreshed: boolean;
  durationMs: number;
  /** Only for --dry-run: what the renderer would write. */
  files?: PreviewFile[];
}

export function interfaceNames(netcfg: NetworkConfig | null): string[] {
  if (!netcfg) return [];
  if (netcfg.version === 2) return Object.keys(netcfg.ethernets ?? {});
  return (netcfg.config ?? []).filter((c) => c.type === 'physical').map((c) => String(c.name));
}

async function load(bridge: Bridge, refresh: boolean): Promise<NetworkConfig> {
  const netcfg = refresh ? (await crawl(bridge)).networkConfig : await bridge.networkConfig();
  if (!netcfg) throw new UserError('the cached datasource has no network config to apply');
  return netcfg;
}

export async function applyNetwork(bridge: Bridge, opts: ApplyOptions): Promise<ApplyResult> {
  const t0 = performance.now();
  if (opts.dryRun) {
    const netcfg = await load(bridge, opts.refresh);
    const p = await bridge.preview(netcfg);
    return { networkConfig: netcfg, refreshed: opts.refresh, durationMs: since(t0), files: p.files };
  }
  try {
    const netcfg = await load(bridge, opts.refresh);
    if (opts.refresh) await persist(bridge);
    const r = await bridge.applyNetwork(netcfg, true);
    if (r.failed) throw new UserError('the network activator failed to bring up one or more interfaces');
    const durationMs = since(t0);
    const names = interfaceNames(netcfg);
    await recordApply({ time: new Date().toISOString(), result: 'ok', duration_ms: durationMs, refreshed: opts.refresh, interfaces: names });
    log('info', 'applied network config', { refreshed: opts.refresh, interfaces: names.join(','), duration_ms: durationMs });
    return { networkConfig: netcfg, refreshed: opts.refresh, durationMs };
  } catch (e) {
    const rec = { time: new Date().toISOString(), result: 'failed' as const, duration_ms: since(t0), refreshed: opts.refresh, error: oneLine(e) };
    await recordApply(rec).catch(() => {});
    log('error', 'apply failed', { error: rec.error, duration_ms: rec.duration_ms });
    throw e;
  }
}
