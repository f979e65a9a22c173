/**
 * The remove stage: tear removed NICs down, then re-render without them from cached metadata (no
 * crawl: the device being gone is authoritative, even while the metadata service still lists it),
 * and only then record them as removed.
 */
import type { Bridge } from '../../bridge/index.js';
import { isBridgeFailure } from '../../bridge/manager.js';
import type { HotplugEvent } from '../events/event.js';
import type { KnownInterfaces } from '../record/index.js';
import { recordEvent, type BatchContext } from './context.js';
import { configure } from './configure.js';
import { routesStage } from './routes.js';
import { log, since } from '../util/log.js';
import { oneLine } from '../util/errors.js';

export interface StageResult {
  /** Ids of the events handled (recorded), to ack. */
  handled: string[];
  failed: boolean;
}

export async function removeStage(ctx: BatchContext, b: Bridge, removes: HotplugEvent[], known: KnownInterfaces): Promise<StageResult> {
  const { deps } = ctx;
  const outcome: { ev: HotplugEvent; error?: string }[] = [];
  for (const ev of removes) {
    const mac = ev.mac ?? known[ev.ifname]?.mac;
    try {
      // Down first, while the rendered config still has the stanza (upstream 22.4 did it the other
      // way round, so ifdown failed and dhclient/ifstate were left behind). With the device still
      // present the activator brings it down; once it is gone, ifdown can only release a lease it
      // cannot send (~1 s in dhclient -r): the stack's scrub stops the DHCP client and clears the
      // activator's state directly.
      let t = performance.now();
      if (deps.links.exists(ev.ifname)) {
        await b.bringDown(ev.ifname).catch((e) => {
          if (isBridgeFailure(e)) throw e; // the whole batch is re-run (events still queued)
          log('debug', 'activator bring-down failed', { iface: ev.ifname, error: oneLine(e) });
        });
        log('debug', 'brought down', { iface: ev.ifname, duration_ms: since(t) });
      }
      t = performance.now();
      await deps.stack.scrub(ev.ifname);
      log('debug', 'scrubbed', { iface: ev.ifname, duration_ms: since(t) });
      // Rules, routes and addresses we added for it go too (only ours: protocol 199 + state file).
      await deps.routing.removeInterface(ev.ifname).catch((e) => log('warn', 'policy routing cleanup failed', { iface: ev.ifname, error: oneLine(e) }));
      await deps.records.forget(ev.ifname);
      outcome.push({ ev: { ...ev, mac } });
    } catch (e) {
      if (isBridgeFailure(e)) throw e;
      outcome.push({ ev: { ...ev, mac }, error: oneLine(e) });
    }
  }
  let renderError: string | undefined;
  try {
    const t = performance.now();
    const r = await b.rederive();
    log('debug', 'rederived', { duration_ms: since(t) });
    if (r.network_config) await configure(ctx, b, { network_config: r.network_config, interfaces: r.interfaces }, { persist: true, bringUp: [] });
    await routesStage(ctx, r.summary, true);
  } catch (e) {
    if (isBridgeFailure(e)) throw e;
    renderError = `could not re-render the config without it: ${oneLine(e)}`;
  }
  for (const o of outcome) {
    const err = o.error ?? renderError;
    await recordEvent(ctx, o.ev, err ? 'failed' : 'removed', err);
  }
  return { handled: outcome.map((o) => o.ev.id), failed: outcome.some((o) => o.error) || !!renderError };
}
