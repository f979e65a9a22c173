/**
 * The configure stage: render a network config through cloud-init's distro (renderer), persist the
 * datasource and our JSON copy, bring up only the interfaces asked for (as upstream's hook: the
 * others are already up) plus any rendered earlier but never brought up, give their DHCP clients a
 * home, and record the apply. Returns the names that failed to come up.
 */
import type { Bridge, NetInterface, NetworkConfig } from '../../bridge/index.js';
import type { BatchContext } from './context.js';
import { persist } from '../core/refresh.js';
import { log, since } from '../util/log.js';

/** A network config with the interfaces cloud-init resolves from it. */
export interface NetConfigView {
  network_config: NetworkConfig;
  interfaces: NetInterface[];
}

/** The MAC cloud-init matches interface `name` by. */
export const macOf = (view: NetConfigView, name: string): string | undefined => view.interfaces.find((i) => i.name === name)?.mac ?? undefined;

/** Activator bring-up of `names`, then their DHCP clients rehomed; returns name → ok. */
export async function bringUp(ctx: BatchContext, b: Bridge, names: string[]): Promise<Record<string, boolean>> {
  if (!names.length) return {};
  const up = await b.bringUp(names);
  const ok = Object.keys(up).filter((n) => up[n]);
  if (ok.length && ctx.deps.init.name !== 'none') await ctx.deps.init.rehomeDhcpClients(await ctx.deps.stack.dhcpClients(ok));
  return up;
}

export async function configure(ctx: BatchContext, b: Bridge, view: NetConfigView, opts: { persist: boolean; bringUp: string[] }): Promise<string[]> {
  const t0 = performance.now();
  if (opts.persist) await persist(b);
  await b.applyNetwork(view.network_config, false);
  await ctx.deps.stack.rendered?.(view);
  const names = view.interfaces.map((i) => i.name);
  const stale = (await ctx.deps.stack.renderedButDown(names)).filter((n) => !opts.bringUp.includes(n));
  if (stale.length) log('info', 'bringing up interfaces rendered earlier but never brought up', { interfaces: stale.join(',') });
  const up = await bringUp(ctx, b, [...opts.bringUp, ...stale]);
  for (const n of stale) {
    const mac = up[n] ? macOf(view, n) : undefined;
    if (mac) await ctx.deps.records.remember(n, { mac, addedAt: Date.now() }).catch(() => {});
  }
  const failed = Object.entries(up).filter(([, ok]) => !ok).map(([n]) => n);
  await ctx.deps.records.apply({
    time: new Date().toISOString(),
    result: failed.length ? 'failed' : 'ok',
    duration_ms: since(t0),
    refreshed: opts.persist,
    interfaces: names,
    error: failed.length ? `activator failed to bring up ${failed.join(', ')}` : undefined,
  });
  return failed;
}
