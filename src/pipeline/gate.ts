/**
 * Whether events may be acted on now: cloud-init finished booting, and hotplug is
 * enabled both by cloud-init's own rule and locally (`hotplug disable` persists).
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { paths } from '../paths.js';
import { bootFinished } from '../core/boot.js';
import type { InstanceSummary } from '../../bridge/index.js';

export function locallyDisabled(): boolean {
  return existsSync(paths.disabledFlag);
}

export async function setLocallyDisabled(disabled: boolean): Promise<void> {
  if (disabled) {
    await mkdir(dirname(paths.disabledFlag), { recursive: true, mode: 0o755 });
    await writeFile(paths.disabledFlag, `disabled by hotplug disable at ${new Date().toISOString()}\n`, { mode: 0o644 });
  } else {
    await rm(paths.disabledFlag, { force: true });
  }
}

export type Gate = { open: true } | { open: false; reason: string };

export function enabledGate(summary: InstanceSummary): Gate {
  if (locallyDisabled()) return { open: false, reason: `hotplug disabled locally (${paths.disabledFlag}; run "hotplug enable")` };
  if (!summary.hotplug.enabled) return { open: false, reason: `hotplug disabled by cloud-init: ${summary.hotplug.reason}` };
  return { open: true };
}

/** Resolves once cloud-init's result.json exists; events wait (queued) until then. */
export async function waitForBoot(pollMs = 250, onWait?: () => void): Promise<void> {
  if (bootFinished()) return;
  onWait?.();
  while (!bootFinished()) await new Promise((r) => setTimeout(r, pollMs));
}
