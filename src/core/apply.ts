/**
 * Apply the instance's network config through cloud-init's distro (renderer +
 * activator, bring_up=True), refreshing metadata first unless told not to.
 */
import type { Bridge, InstanceSummary, NetworkConfig, PreviewFile } from '../../bridge/index.js';
import { loadConfig } from '../config.js';
import { reconcile } from '../routing/reconcile.js';
import { previewRoutes } from '../routing/preview.js';
import { dhclientLeaseGateway } from '../stack/dhclient-lease.js';
import { crawl, persist } from './refresh.js';
import { recordApply } from './last-apply.js';
import { log, since } from '../util/log.js';
import { oneLine, UserError } from '../util/errors.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { rehomeDhcpClients } from '../net/dhcp-home.js';

/** Interfaces in a config that are not on this system are rendered but cannot be brought up. */
const linkExists = (n: string) => existsSync(join(process.env.HOTPLUG_ROOT ?? '/', 'sys/class/net', n));

export interface ApplyOptions {
  refresh: boolean;
  dryRun: boolean;
}

export interface ApplyResult {
  networkConfig: NetworkConfig;
  refreshed: boolean;
  durationMs: number;
  /** Only for --dry-run: what the renderer would write, and the ip commands routing would run. */
  files?: PreviewFile[];
  routeLines?: string[];
}

export function interfaceNames(netcfg: NetworkConfig | null): string[] {
  if (!netcfg) return [];
  if (netcfg.version === 2) return Object.keys(netcfg.ethernets ?? {});
  return (netcfg.config ?? []).filter((c) => c.type === 'physical').map((c) => String(c.name));
}

async function load(bridge: Bridge, refresh: boolean): Promise<{ netcfg: NetworkConfig; summary: InstanceSummary }> {
  if (refresh) {
    const r = await crawl(bridge);
    return { netcfg: r.networkConfig, summary: r.summary };
  }
  const netcfg = await bridge.networkConfig();
  if (!netcfg) throw new UserError('the cached datasource has no network config to apply');
  return { netcfg, summary: await bridge.summary() };
}

export async function applyNetwork(bridge: Bridge, opts: ApplyOptions): Promise<ApplyResult> {
  const t0 = performance.now();
  const cfg = await loadConfig();
  if (opts.dryRun) {
    const { netcfg, summary } = await load(bridge, opts.refresh);
    const p = await bridge.preview(netcfg);
    const routes = await previewRoutes(summary, cfg, { leaseGateway: (n) => dhclientLeaseGateway(n) });
    return { networkConfig: netcfg, refreshed: opts.refresh, durationMs: since(t0), files: p.files, routeLines: routes.lines };
  }
  try {
    const { netcfg, summary } = await load(bridge, opts.refresh);
    if (opts.refresh) await persist(bridge);
    const names = interfaceNames(netcfg);
    await bridge.applyNetwork(netcfg, false);
    const up = await bridge.bringUp(names.filter((n) => linkExists(n)));
    await rehomeDhcpClients(Object.keys(up).filter((n) => up[n]));
    const failed = Object.entries(up).filter(([, ok]) => !ok).map(([n]) => n);
    if (failed.length) throw new UserError(`the network activator failed to bring up ${failed.join(', ')}`);
    // A crawl that failed threw above, so the metadata here is complete.
    const rt = await reconcile({ summary, config: cfg, metadataComplete: true, env: { leaseGateway: (n) => dhclientLeaseGateway(n) } });
    if (rt.failed.length) throw new UserError(`policy routing: ${rt.failed.length} change(s) failed`);
    const durationMs = since(t0);
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
