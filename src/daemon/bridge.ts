/**
 * The daemon's warm Python bridge: bridge/manager.ts's BridgeManager with the CLI's defaults
 * (cloud-init's obj.pkl, openInstance recording instance.json, the CLI's log), so that
 * `new BridgeManager()` is all the daemon needs. Everything else is re-exported unchanged.
 */
import { BridgeManager as CoreBridgeManager, type BridgeManagerOptions } from '../../bridge/manager.js';
import { paths } from '../paths.js';
import { log } from '../util/log.js';
import { openInstance } from '../core/instance-record.js';

export { isBridgeFailure, rssOf } from '../../bridge/manager.js';
export type { BridgeFactory, BridgeHealth, ProcOf, WatchedProc, WithBridgeOptions, OpenInstance } from '../../bridge/manager.js';

export class BridgeManager extends CoreBridgeManager {
  /** Every option optional: objPkl = paths.objPkl, open = openInstance, log = the CLI's log. */
  constructor(opts: Partial<BridgeManagerOptions> = {}) {
    super({
      factory: opts.factory,
      objPkl: opts.objPkl ?? paths.objPkl,
      open: opts.open ?? openInstance,
      procOf: opts.procOf,
      log: opts.log ?? log,
    });
  }
}
