/**
 * Re-crawl the datasource and persist the result. The crawl happens in memory; only
 * a whole, successful crawl is written (obj.pkl atomically, instance-data.json via
 * cloud-init's writer, our network-config JSON atomically). A failed crawl leaves
 * every file byte-identical.
 */
import type { Bridge, InstanceSummary, NetInterface, NetworkConfig } from '../../bridge/index.js';
import { paths } from '../paths.js';
import { log } from '../util/log.js';
import { recordStored } from '../record/instance.js';

export interface RefreshResult {
  summary: InstanceSummary;
  networkConfig: NetworkConfig;
  interfaces: NetInterface[];
  durationMs: number;
}

export async function crawl(bridge: Bridge): Promise<RefreshResult> {
  const r = await bridge.refresh({ timeout: 2, maxWait: 10 });
  log('debug', 'metadata crawled', { duration_ms: r.duration_ms, macs: r.summary.macs.length });
  return { summary: r.summary, networkConfig: r.network_config, interfaces: r.interfaces, durationMs: r.duration_ms };
}

export async function persist(bridge: Bridge): Promise<void> {
  const { summary } = await bridge.store(paths.networkConfigJson);
  await recordStored(summary);
}

export async function refreshMetadata(bridge: Bridge): Promise<RefreshResult> {
  const res = await crawl(bridge);
  await persist(bridge);
  return res;
}
