/**
 * The lab's systemd-networkd flavour (`lab up --stack networkd`): systemd-networkd in the
 * foreground inside the instance's namespaces, beside the system D-Bus (nm.ts), started where
 * systemd starts it, after cloud-init's local stage has rendered the `.network` files.
 */
import { existsSync, readFileSync } from 'node:fs';
import { labPaths, type LabPaths } from './paths.js';
import { withLock } from './lock.js';
import { saveState } from './state.js';
import { mustLoad, progress, type LabOptions } from './running.js';
import { UserError } from '../../src/util/errors.js';
import { spawnDaemon, isAlive, killRefs, type ProcRef } from './proc.js';
import { nsenterArgv, instanceRoot, instanceRun, INSTANCE_ENV } from './instance.js';
import { sleep } from './run.js';
import { logOf, lastLines } from './nm.js';

export const NETWORKD = '/lib/systemd/systemd-networkd';

/** networkd's state of the link in the instance (ADMIN_STATE of /run/systemd/netif/links/<ifindex>), '' when none. */
function adminState(holderPid: number, ifname: string): string {
  try {
    const idx = readFileSync(`${instanceRoot(holderPid)}/sys/class/net/${ifname}/ifindex`, 'utf8').trim();
    return /^ADMIN_STATE=(\S+)$/m.exec(readFileSync(`${instanceRoot(holderPid)}/run/systemd/netif/links/${idx}`, 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

/** Start systemd-networkd (it drops to the systemd-network user) and wait until it has configured eth0. */
export async function startNetworkd(p: LabPaths, holderPid: number, onSpawn: (r: ProcRef) => Promise<void>): Promise<ProcRef> {
  await instanceRun(holderPid, ['install', '-d', '-m', '755', '-o', 'systemd-network', '-g', 'systemd-network', '/run/systemd/netif'], { env: INSTANCE_ENV, cleanEnv: true });
  const ref = spawnDaemon(nsenterArgv(holderPid, [NETWORKD]), 'systemd-networkd', { log: logOf(p, 'networkd'), env: { ...INSTANCE_ENV, SYSTEMD_LOG_TARGET: 'console', SYSTEMD_LOG_LEVEL: 'info' } });
  await onSpawn(ref);
  const end = Date.now() + 60_000;
  while (Date.now() < end && isAlive(ref)) {
    if (adminState(holderPid, 'eth0') === 'configured') return ref;
    await sleep(50);
  }
  throw new Error(`systemd-networkd did not configure eth0 (state ${adminState(holderPid, 'eth0') || 'none'}): ${await lastLines(logOf(p, 'networkd'))}`);
}

/** `systemctl restart systemd-networkd`: stop it, start it again, until it has configured `ifname`. Returns the new PID. */
export async function restartNetworkd(opts: LabOptions & { ifname?: string } = {}): Promise<number> {
  const p = labPaths(opts.name);
  return withLock(p.lock, async () => {
    const s = await mustLoad(p);
    if (s.options.stack !== 'networkd') throw new UserError(`lab ${p.name} runs ${s.options.stack ?? 'ifupdown'}, not systemd-networkd`);
    if (s.procs.networkd) await killRefs([s.procs.networkd]);
    progress(opts, 'systemd-networkd stopped; starting it again');
    s.procs.networkd = await startNetworkd(p, s.holder!.pid, async (ref) => {
      s.procs.networkd = ref;
      await saveState(p.state, s);
    });
    const ifname = opts.ifname ?? 'eth0';
    const end = Date.now() + 60_000;
    while (Date.now() < end && adminState(s.holder!.pid, ifname) !== 'configured') await sleep(50);
    await saveState(p.state, s);
    return s.procs.networkd.pid;
  });
}

/** Whether this host can run the flavour (the instance's /usr is the host's). */
export const networkdInstalled = (): boolean => existsSync(NETWORKD) && existsSync('/usr/bin/dbus-daemon');
