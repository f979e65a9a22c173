/**
 * The one predicate for "is systemd running here", and the InitSystem it selects. Whether a
 * target root *uses* systemd (install into an image) is a different question: usesSystemd().
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { InitSystem } from './init-system.js';
import { Systemd } from './systemd.js';

export type { InitSystem } from './init-system.js';

/** sd_booted(): systemd is PID 1 of this system (under HOTPLUG_ROOT for tests). */
export function systemdRunning(root: string = process.env.HOTPLUG_ROOT ?? '/'): boolean {
  return existsSync(join(root, 'run/systemd/system'));
}

/** Whether the system in `root` boots with systemd (it runs now, or its units are installed: an image being built). */
export function usesSystemd(root: string): boolean {
  return systemdRunning(root) || existsSync(join(root, 'lib/systemd/system/cloud-init.target'));
}

/** Without a service manager: nothing to notify, and DHCP clients keep whatever parent they have. */
export class NoInit implements InitSystem {
  readonly name = 'none' as const;
  async notifyReady(): Promise<void> {}
  async rehomeDhcpClients(): Promise<number> {
    return 0;
  }
}

let chosen: InitSystem | undefined;
/** Chosen once per process. */
export function initSystem(): InitSystem {
  return (chosen ??= systemdRunning() ? new Systemd() : new NoInit());
}
