/**
 * The bridge manager as src uses it (worker, daemon, one-shot commands): Python started with our
 * logger, cloud-init's cache opened through openInstance (which records instance.json for a cheap
 * `status`), and the network stack cloud-init reported at open kept for choosing our NetworkStack.
 */
import { startBridge } from '../../bridge/index.js';
import { BridgeManager } from '../../bridge/manager.js';
import type { StackReport } from '../stack/index.js';
import { openInstance } from '../record/instance.js';
import { paths } from '../paths.js';
import { log } from '../util/log.js';

export class Bridges extends BridgeManager {
  /** Renderer and activator cloud-init reported at the last open (null before one). */
  stackReport: StackReport | null = null;

  constructor() {
    const self: { it?: Bridges } = {};
    super({
      factory: () => startBridge({ log }),
      objPkl: paths.objPkl,
      log,
      open: async (b, objPkl) => {
        const o = await openInstance(b, objPkl);
        if (self.it) self.it.stackReport = o.stack ?? null;
        return o;
      },
    });
    self.it = this;
  }
}

export const newBridgeManager = (): Bridges => new Bridges();
