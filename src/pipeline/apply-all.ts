/**
 * A full apply of the instance's network config (`hotplug apply`, the socket's apply, the link
 * policy 'apply'): refresh metadata first unless told not to, render through cloud-init's distro,
 * bring up every interface present, reconcile policy routing; or, for a dry run, say what it would do.
 */
import type { Bridge, InstanceSummary, PreviewFile } from '../../bridge/index.js';
import { currentSummary } from '../../bridge/summary-memo.js';
import type { PipelineDeps } from './deps.js';
import { newContext } from './context.js';
import { bringUp, type NetConfigView } from './configure.js';
import { previewRoutes } from '../routing/preview.js';
import { crawl, persist } from '../core/refresh.js';
import { log, since } from '../util/log.js';
import { oneLine, UserError } from '../util/errors.js';

export interface ApplyOptions {
  refresh: boolean;
  dryRun: boolean;
  /** Hears each step as it starts (a daemon job streams them to its waiters). */
  onStep?: (step: string) => void;
}

export interface ApplyResult {
  view: NetConfigView;
  refreshed: boolean;
  durationMs: number;
  /** Only for a dry run: what the renderer would write, and the ip commands routing would run. */
  files?: PreviewFile[];
  routeLines?: string[];
}

async function load(b: Bridge, refresh: boolean, onStep: (s: string) => void): Promise<{ view: NetConfigView; summary: InstanceSummary }> {
  onStep(refresh ? 'refreshing metadata' : 'reading the cached network config');
  if (refresh) {
    const r = await crawl(b);
    return { view: { network_config: r.networkConfig, interfaces: r.interfaces }, summary: r.summary };
  }
  const view = await b.networkConfig();
  if (!view) throw new UserError('the cached datasource has no network config to apply');
  return { view, summary: await currentSummary(b) };
}

export async function applyAll(deps: PipelineDeps, b: Bridge, opts: ApplyOptions): Promise<ApplyResult> {
  const t0 = performance.now();
  const cfg = deps.config();
  const step = opts.onStep ?? (() => {});
  if (opts.dryRun) {
    const { view, summary } = await load(b, opts.refresh, step);
    step('previewing');
    const p = await b.preview(view.network_config);
    const routes = await previewRoutes(summary, cfg, { leaseGateway: (n) => deps.stack.leaseGateway(n) });
    return { view, refreshed: opts.refresh, durationMs: since(t0), files: p.files, routeLines: routes.lines };
  }
  const ctx = newContext(deps, { works: true });
  try {
    const { view, summary } = await load(b, opts.refresh, step);
    if (opts.refresh) await persist(b);
    const names = view.interfaces.map((i) => i.name);
    step('rendering the network config');
    await b.applyNetwork(view.network_config, false);
    await deps.stack.rendered?.(view);
    step(`bringing up ${names.filter((n) => deps.links.exists(n)).join(' ') || 'nothing'}`);
    // Interfaces in the config that are not on this system are rendered but cannot be brought up.
    const up = await bringUp(ctx, b, names.filter((n) => deps.links.exists(n)));
    const failed = Object.entries(up).filter(([, ok]) => !ok).map(([n]) => n);
    if (failed.length) throw new UserError(`the network activator failed to bring up ${failed.join(', ')}`);
    // A crawl that failed threw above, so the metadata here is complete.
    step('reconciling policy routing');
    const rt = await deps.routing.reconcile(summary, true);
    if (rt.failed) throw new UserError(`policy routing: ${rt.failed} change(s) failed`);
    const durationMs = since(t0);
    await deps.records.apply({ time: new Date().toISOString(), result: 'ok', duration_ms: durationMs, refreshed: opts.refresh, interfaces: names });
    log('info', 'applied network config', { refreshed: opts.refresh, interfaces: names.join(','), duration_ms: durationMs });
    return { view, refreshed: opts.refresh, durationMs };
  } catch (e) {
    const rec = { time: new Date().toISOString(), result: 'failed' as const, duration_ms: since(t0), refreshed: opts.refresh, error: oneLine(e) };
    await deps.records.apply(rec).catch(() => {});
    log('error', 'apply failed', { error: rec.error, duration_ms: rec.duration_ms });
    throw e;
  }
}
