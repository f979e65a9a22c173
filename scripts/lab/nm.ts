/**
 * The lab's NetworkManager flavour (`lab up --stack nm`): a system D-Bus and NetworkManager in the
 * foreground, both inside the instance's namespaces (the bus socket lives in the instance's own
 * /run), as NetworkManager.service runs on a distro: after cloud-init's local stage has rendered
 * the keyfile, before its network stage.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { labPaths, type LabPaths } from './paths.js';
import { withLock } from './lock.js';
import { saveState } from './state.js';
import { mustLoad, progress, type LabOptions } from './running.js';
import { UserError } from '../../src/util/errors.js';
import { spawnDaemon, isAlive, killRefs, type ProcRef } from './proc.js';
import { nsenterArgv, instanceRoot, instanceRun, INSTANCE_ENV } from './instance.js';
import { sleep } from './run.js';

/** The network stacks a lab instance can run: ifupdown (Debian's default), NetworkManager or systemd-networkd (networkd.ts). */
export type LabStack = 'ifupdown' | 'nm' | 'networkd';
export const LAB_STACKS: readonly LabStack[] = ['ifupdown', 'nm', 'networkd'];

/** cloud.cfg's system_info.network for each stack (what a distro shipping it configures). */
export function networkSystemInfo(stack: LabStack): string {
  const pick = stack === 'nm' ? 'network-manager' : stack === 'networkd' ? 'networkd' : null;
  return pick ? `    renderers: [${pick}]\n    activators: [${pick}]\n` : '    renderers: [eni]\n';
}

export const logOf = (p: LabPaths, what: string) => join(p.dir, `${what}.log`);

export async function lastLines(file: string): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
}

/** dbus-daemon --system in the foreground; ready once its socket exists in the instance's /run. */
export async function startDbus(p: LabPaths, holderPid: number, onSpawn: (r: ProcRef) => Promise<void>): Promise<ProcRef> {
  await instanceRun(holderPid, ['install', '-d', '-m', '755', '/run/dbus'], { env: INSTANCE_ENV, cleanEnv: true });
  const ref = spawnDaemon(nsenterArgv(holderPid, ['dbus-daemon', '--system', '--nofork', '--nopidfile']), 'dbus-daemon', { log: logOf(p, 'dbus'), env: INSTANCE_ENV });
  await onSpawn(ref);
  const sock = `${instanceRoot(holderPid)}/run/dbus/system_bus_socket`;
  const end = Date.now() + 10_000;
  while (Date.now() < end && isAlive(ref)) {
    if (existsSync(sock)) return ref;
    await sleep(20);
  }
  throw new Error(`dbus-daemon did not start: ${await lastLines(logOf(p, 'dbus'))}`);
}

/**
 * NetworkManager --no-daemon, then `nm-online -s` (what NetworkManager-wait-online does: startup
 * complete, i.e. every device that autoconnects has its connection up or failed).
 */
export async function startNetworkManager(p: LabPaths, holderPid: number, onSpawn: (r: ProcRef) => Promise<void>): Promise<ProcRef> {
  // A NetworkManager that just exited may still own its bus name for a moment (the bus daemon
  // has yet to see the connection close): a new one would exit with "Service already taken".
  const owned = ['dbus-send', '--system', '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameHasOwner', 'string:org.freedesktop.NetworkManager'];
  const end = Date.now() + 10_000;
  while (Date.now() < end && /boolean true/.test((await instanceRun(holderPid, owned, { env: INSTANCE_ENV, cleanEnv: true, check: false })).stdout)) await sleep(50);
  const ref = spawnDaemon(nsenterArgv(holderPid, ['NetworkManager', '--no-daemon', '--debug', '--log-level=INFO']), 'NetworkManager', { log: logOf(p, 'NetworkManager'), env: INSTANCE_ENV });
  await onSpawn(ref);
  const r = await instanceRun(holderPid, ['nm-online', '-s', '-q', '-t', '60'], { env: INSTANCE_ENV, cleanEnv: true, check: false, timeoutMs: 70_000 });
  if (!isAlive(ref) || r.exitCode !== 0) throw new Error(`NetworkManager did not come up (nm-online exit ${r.exitCode}): ${await lastLines(logOf(p, 'NetworkManager'))}`);
  return ref;
}

/**
 * Stop the instance's NetworkManager (SIGTERM: it leaves devices configured, as on a service
 * restart) and start it again, as `systemctl restart NetworkManager` does. Returns the new PID.
 */
export async function restartNetworkManager(opts: LabOptions = {}): Promise<number> {
  const p = labPaths(opts.name);
  return withLock(p.lock, async () => {
    const s = await mustLoad(p);
    if (s.options.stack !== 'nm') throw new UserError(`lab ${p.name} runs ${s.options.stack ?? 'ifupdown'}, not NetworkManager`);
    if (s.procs.networkManager) await killRefs([s.procs.networkManager]);
    progress(opts, 'NetworkManager stopped; starting it again');
    s.procs.networkManager = await startNetworkManager(p, s.holder!.pid, async (ref) => {
      s.procs.networkManager = ref;
      await saveState(p.state, s);
    });
    await saveState(p.state, s);
    return s.procs.networkManager.pid;
  });
}
