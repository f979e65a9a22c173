/**
 * The bridge manager as src uses it (worker, daemon, one-shot commands): Python started with our
 * logger, cloud-init's cache opened through openInstance (which records instance.json for a cheap
 * `status`), and the network stack cloud-init reported at open kept for choosing our NetworkStack.
 */
import { BridgeManager, type BridgeManagerOptions } from '../../bridge/manager.js';
import type { StackReport } from '../stack/index.js';
import { openInstance } from '../record/instance.js';
import { paths } from '../paths.js';
import { loadConfig } from '../config.js';
import type { Bridge } from '../../bridge/index.js';
import { log } from '../util/log.js';

/**
 * Before each open: where network metadata may come from besides the datasource's own source
 * (configdrive.metadata_fallback). Read from the config file at each bridge start.
 */
async function metadataSources(b: Bridge): Promise<void> {
  if (typeof b.setSources !== 'function') return; // a test's fake bridge
  const cfg = await loadConfig().catch(() => null);
  const url = cfg?.configdrive.metadata_fallback ? cfg.configdrive.metadata_url : null;
  if (url) await b.setSources(url);
}

export class Bridges extends BridgeManager {
  /** Renderer and activator cloud-init reported at the last open (null before one). */
  stackReport: StackReport | null = null;

  /** Every option has the CLI's default; tests give a fake factory, obj.pkl and child. */
  constructor(opts: Partial<Omit<BridgeManagerOptions, 'open'>> = {}) {
    const self: { it?: Bridges } = {};
    super({
      // No factory: the manager starts the real pythonia bridge itself (with `log`), and knows to
      // repair pythonia's global state when it restarts it.
      factory: opts.factory,
      objPkl: opts.objPkl ?? paths.objPkl,
      procOf: opts.procOf,
      log: opts.log ?? log,
      open: async (b, objPkl) => {
        await metadataSources(b);
        const o = await openInstance(b, objPkl);
        if (self.it) self.it.stackReport = o.stack ?? null;
        return o;
      },
    });
    self.it = this;
  }
}

export const newBridgeManager = (): Bridges => new Bridges();
