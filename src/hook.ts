#!/usr/bin/env node
/**
 * The hand-off of a hotplug event has ONE implementation: bin/hotplug-udev-hook, the POSIX sh
 * program the udev rule runs (validate, queue atomically, then leave the event to the daemon, to a
 * running worker, or start one; its header has the no-lost-events argument). This module is how
 * node code uses it:
 *
 *  - runHook() (`hotplug handle`, and dist/src/hook.js run directly with udev's environment):
 *    validates the values with the worker's own validators, then runs the sh program with exactly
 *    those values as its environment (an argv array, no shell string; nothing else of ours leaks
 *    in). A value refused here is logged like the sh program logs it.
 *  - ensureWorker() (apply-lock holders that are not workers, see core/session.ts): the sh
 *    program's --ensure-worker mode.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventFromUdevEnv, type HotplugEvent } from './events/event.js';
import { kick } from './daemon/kick.js';
import { CLI_JS, UDEV_HOOK } from './install/files.js';
import { paths, SAFE_PATH } from './paths.js';

/** The environment the sh program gets for one validated event: the variables it reads, no more. */
export function hookEnv(ev: Pick<HotplugEvent, 'action' | 'ifname' | 'devpath' | 'seqnum' | 'mac' | 'driver'>): Record<string, string> {
  const env: Record<string, string> = { PATH: SAFE_PATH, ACTION: ev.action, INTERFACE: ev.ifname, DEVPATH: ev.devpath };
  if (ev.seqnum !== undefined) env.SEQNUM = String(ev.seqnum);
  if (ev.mac) env.HOTPLUG_MAC = ev.mac;
  if (ev.driver) env.ID_NET_DRIVER = ev.driver;
  if (process.env.HOTPLUG_ROOT) env.HOTPLUG_ROOT = process.env.HOTPLUG_ROOT;
  return env;
}

/** Runs bin/hotplug-udev-hook with node and the CLI it should start workers with. */
function runUdevHook(env: Record<string, string>, extra: string[] = []): SpawnSyncReturns<string> {
  return spawnSync('/bin/sh', [UDEV_HOOK, process.execPath, CLI_JS, ...extra], {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'], // its one log line goes to our stderr, as from udev
    timeout: 30_000,
  });
}

/**
 * For holders of the apply lock that are not workers (`hotplug apply`, `refresh-metadata`): a hook
 * that found the lock taken queued its event and started no worker, so after releasing they look
 * at the queue and call this. Returns who will handle it (daemon, running, started, systemd-run, …).
 */
export function ensureWorker(): string {
  const env: Record<string, string> = { PATH: SAFE_PATH };
  if (process.env.HOTPLUG_ROOT) env.HOTPLUG_ROOT = process.env.HOTPLUG_ROOT;
  const r = runUdevHook(env, ['--ensure-worker']);
  return r.status === 0 ? r.stdout.trim() : `failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`;
}

/** Queues one event from udev-style variables through the sh program; returns its exit status. */
export async function runHook(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const t0 = performance.now();
  let ev: HotplugEvent;
  try {
    ev = eventFromUdevEnv(env);
  } catch (e) {
    const line = `hotplug[${process.pid}] error: hook rejected event: ${(e as Error).message.split('\n')[0]} duration_ms=${(performance.now() - t0).toFixed(1)}`;
    process.stderr.write(line + '\n');
    try {
      mkdirSync(dirname(paths.logFile), { recursive: true });
      appendFileSync(paths.logFile, line + '\n', { mode: 0o640 });
    } catch {
      /* logging must never fail the hook */
    }
    return 1;
  }
  const r = runUdevHook(hookEnv(ev));
  if (r.error) {
    process.stderr.write(`hotplug[${process.pid}] error: cannot run ${UDEV_HOOK}: ${r.error.message}\n`);
    return 1;
  }
  // The daemon also watches the queue (inotify); a kick just saves it that round trip.
  if (r.status === 0) await kick(500);
  return r.status ?? 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void runHook().then((rc) => process.exit(rc));
