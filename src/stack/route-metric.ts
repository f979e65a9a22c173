/**
 * The route metric a network config asks for per interface: v2 `dhcp4-overrides.route-metric`
 * (what Ec2 gives secondary NICs) or v1 subnet `metric`, for the stacks whose cloud-init 22.4.2
 * renderer leaves it out (NetworkManager).
 */
import type { NetConfigView } from './network-stack.js';

const metricOk = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** Interface name → metric, for the interfaces the config gives one. */
export function routeMetrics(view: NetConfigView): Map<string, number> {
  const out = new Map<string, number>();
  const nc = view.network_config as Record<string, unknown>;
  const nameOf = (id: string) => view.interfaces.find((i) => i.id === id)?.name ?? id;
  if (nc.version === 2 && nc.ethernets && typeof nc.ethernets === 'object') {
    for (const [id, cfg] of Object.entries(nc.ethernets as Record<string, unknown>)) {
      const ov = (cfg as Record<string, unknown> | null)?.['dhcp4-overrides'] as Record<string, unknown> | undefined;
      if (ov && metricOk(ov['route-metric'])) out.set(nameOf(id), ov['route-metric']);
    }
  } else if (nc.version === 1 && Array.isArray(nc.config)) {
    for (const e of nc.config as Record<string, unknown>[]) {
      if (e?.type !== 'physical' || typeof e.name !== 'string' || !Array.isArray(e.subnets)) continue;
      const m = (e.subnets as Record<string, unknown>[]).map((s) => s?.metric).find(metricOk);
      if (m !== undefined) out.set(e.name, m);
    }
  }
  return out;
}
