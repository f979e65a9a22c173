/** Bringing a lab up: namespaces, dnsmasq, the IMDS, the instance with udevd, then cloud-init's boot stages; `resume` after a pause. */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { labPaths, PRIMARY_SUBNET, type LabPaths } from './paths.js';
import { withLock } from './lock.js';
import { loadState, saveState, type LabState, type LabMode, type StageTiming, type Phase } from './state.js';
import { createNetns, setupCloud, setupInstance, createVeths, netnsExists, netnsPath } from './netns.js';
import { newModel, saveModel, CLOUDS, type Cloud } from './metadata.js';
import { CONFIG_DRIVE_DIR, writeConfigDrive } from './configdrive.js';
import { dnsmasqArgv, writeHostsFile, waitDnsmasqReady } from './dhcp.js';
import { spawnDaemon, isAlive } from './proc.js';
import { prepareOverlay, startHolder, runStage, cloudInitStatus, defaultUserData, bootStages, NM_STAGE, NETWORKD_STAGE, MASKED_UDEV_RULES, type CloudInitStatus, type Stage } from './instance.js';
import { LAB_STACKS, startDbus, startNetworkManager, type LabStack } from './nm.js';
import { startNetworkd, networkdInstalled } from './networkd.js';
import { startUdevd, startMonitor, coldplug, installNetOnlyRules } from './udev.js';
import * as ctl from './imds-control.js';
import { newAttachment, nicModelOf } from './alloc.js';
import { setupSourceCheck, srcCheckAddPorts, setupClient } from './fabric.js';
import { waitFor } from './run.js';
import { progress, secs, mustLoad, type LabOptions } from './running.js';
import { downUnlocked } from './down.js';
import { UserError } from '../../src/util/errors.js';

export interface UpOptions extends LabOptions {
  mode?: LabMode;
  /** Default user-data carries `updates: network: when: [boot, hotplug]` (false: without it). */
  hotplugUserdata?: boolean;
  /** User-data from this file instead of the default. */
  userdataFile?: string;
  /** User-data content (instead of a file). */
  userdata?: string;
  /** Start systemd-udevd in the instance (default true). */
  udev?: boolean;
  /** Stop the boot before this cloud-init stage (`resume` runs the rest). */
  pauseBefore?: 'config' | 'final';
  /** The instance's network stack: ifupdown (default) or nm (NetworkManager with a system D-Bus; needs udev). */
  stack?: LabStack;
  /** The cloud emulated (default ec2). */
  cloud?: Cloud;
  /** A dual-stack VPC: IPv6 subnets with router advertisements and DHCPv6; eth0 gets one IPv6 address. */
  ipv6?: boolean;
}

export interface UpResult {
  name: string;
  mode: LabMode;
  cloud: Cloud;
  phase: Phase;
  alreadyUp: boolean;
  holderPid: number;
  labDir: string;
  upMs?: number;
  stages: StageTiming[];
  cloudInit?: CloudInitStatus;
}

function imdsScript(): string {
  return fileURLToPath(new URL('./imds.js', import.meta.url));
}

function summary(p: LabPaths, s: LabState, alreadyUp: boolean, ci?: CloudInitStatus): UpResult {
  return {
    name: p.name,
    mode: s.mode,
    cloud: s.cloud ?? 'ec2',
    phase: s.phase,
    alreadyUp,
    holderPid: s.holder?.pid ?? 0,
    labDir: p.dir,
    upMs: s.upMs,
    stages: s.stages,
    cloudInit: ci,
  };
}

function running(s: LabState | null): s is LabState {
  return !!s && isAlive(s.holder) && netnsExists(s.netns.cloud) && netnsExists(s.netns.inst) && isAlive(s.procs.imds) && isAlive(s.procs.dnsmasq);
}

export async function up(opts: UpOptions = {}): Promise<UpResult> {
  const p = labPaths(opts.name);
  return withLock(p.lock, async () => {
    const old = await loadState(p.state).catch(() => null);
    // 'creating'/'booting' seen while we hold the lock means the process doing it died: start over
    if (running(old) && (old.phase === 'up' || old.phase.startsWith('paused'))) {
      progress(opts, `already up (${old.mode}, ${old.phase}${old.phase.startsWith('paused') ? ': run `lab resume`' : ''})`);
      return summary(p, old, true);
    }
    if (old || existsSync(p.dir) || netnsExists(p.netnsCloud) || netnsExists(p.netnsInst) || netnsExists(p.netnsClient)) {
      progress(opts, 'cleaning up leftovers of an earlier lab');
      await downUnlocked(p, { ...opts, quiet: true });
    }
    return await create(p, opts);
  });
}

async function create(p: LabPaths, opts: UpOptions): Promise<UpResult> {
  const t0 = performance.now();
  const mode: LabMode = opts.mode ?? 'faithful';
  if (mode !== 'faithful' && mode !== 'generic') throw new UserError(`unknown mode ${mode}: faithful or generic`);
  const cloud: Cloud = opts.cloud ?? 'ec2';
  if (!CLOUDS.includes(cloud)) throw new UserError(`unknown cloud ${cloud}: ${CLOUDS.join(', ')}`);
  const hotplugUserdata = opts.hotplugUserdata ?? true;
  const udev = opts.udev ?? true;
  const stack: LabStack = opts.stack ?? 'ifupdown';
  if (!LAB_STACKS.includes(stack)) throw new UserError(`unknown stack ${stack}: ${LAB_STACKS.join(' or ')}`);
  // Without udevd NetworkManager leaves every NIC unmanaged (it waits for udev to initialise them).
  if (stack === 'nm' && !udev) throw new UserError('--stack nm needs udev (NetworkManager manages only devices udev initialised)');
  // The instance's /usr is the host's: what is not installed here is not there either.
  if (stack === 'nm' && !['/usr/sbin/NetworkManager', '/usr/bin/nmcli', '/usr/bin/dbus-daemon'].every((f) => existsSync(f))) {
    throw new UserError('--stack nm needs network-manager and dbus-daemon installed (run scripts/setup.sh)');
  }
  if (stack === 'networkd' && !networkdInstalled()) throw new UserError('--stack networkd needs systemd-networkd and dbus-daemon installed (run scripts/setup.sh)');
  let userData = opts.userdata ?? defaultUserData(hotplugUserdata);
  if (opts.userdataFile) {
    try {
      userData = await readFile(opts.userdataFile, 'utf8');
    } catch (e) {
      throw new UserError(`cannot read user-data file ${opts.userdataFile}: ${(e as Error).message}`);
    }
  }
  await mkdir(p.dir, { recursive: true, mode: 0o755 });
  const now = new Date().toISOString();
  const s: LabState = {
    version: 1,
    name: p.name,
    mode,
    cloud,
    phase: 'creating',
    createdAt: now,
    updatedAt: now,
    options: { hotplugUserdata, udev, userdataFile: opts.userdataFile, pauseBefore: opts.pauseBefore, stack, ...(opts.ipv6 ? { ipv6: true } : {}) },
    netns: { cloud: p.netnsCloud, inst: p.netnsInst, client: p.netnsClient },
    procs: {},
    counters: { mac: 0, vif: 0 },
    attachments: [],
    stages: [],
  };
  const save = () => saveState(p.state, s);
  await save();
  try {
    progress(opts, `creating namespaces ${p.netnsCloud}, ${p.netnsInst}, ${p.netnsClient}`);
    s.netns.cloudIno = await createNetns(p.netnsCloud);
    await save();
    s.netns.instIno = await createNetns(p.netnsInst);
    await save();
    s.netns.clientIno = await createNetns(p.netnsClient);
    await save();
    await setupCloud(p.netnsCloud);
    await setupSourceCheck(p.netnsCloud);
    await setupInstance(p.netnsInst);
    await setupClient(p.netnsCloud, p.netnsClient);

    const model = newModel(p.name, mode, userData, cloud, !!opts.ipv6);
    const eth0 = newAttachment(s, model, { subnet: PRIMARY_SUBNET, secondaryIps: 0, deviceNumber: 0, inMetadata: true, ipv6s: opts.ipv6 ? 1 : 0 });
    s.attachments.push(eth0);
    model.nics.push(nicModelOf(eth0));
    await saveModel(p.model, model);
    await writeHostsFile(p, s.attachments);
    await save();

    progress(opts, 'starting dnsmasq and the IMDS in the cloud namespace');
    s.procs.dnsmasq = spawnDaemon(dnsmasqArgv(p, !!opts.ipv6), 'dnsmasq', { log: `${p.dir}/dnsmasq.out` });
    await save();
    s.procs.imds = spawnDaemon(
      ['nsenter', `--net=${netnsPath(p.netnsCloud)}`, '--', process.execPath, imdsScript(), '--model', p.model, '--socket', p.imdsSock],
      'imds',
      { log: p.imdsLog },
    );
    await save();
    await waitDnsmasqReady(p, s.procs.dnsmasq);
    const imdsRef = s.procs.imds;
    const ok = await waitFor(async () => (await ctl.imdsHealth(p.imdsSock).then(() => true, () => false)) || !isAlive(imdsRef), 10_000);
    if (!ok || !isAlive(imdsRef)) {
      const log = await readFile(p.imdsLog, 'utf8').catch(() => '');
      throw new Error(`IMDS did not start: ${log.trim().split('\n').slice(-3).join(' | ')}`);
    }

    progress(opts, 'starting the instance (namespaces, overlays, sysfs)');
    await prepareOverlay(p, cloud, stack);
    await srcCheckAddPorts(p.netnsCloud, [{ vif: eth0.vif, subnet: eth0.subnet }]);
    await createVeths(p.netnsCloud, p.netnsInst, [{ vif: eth0.vif, ifname: eth0.ifname, mac: eth0.mac, subnet: eth0.subnet }]);
    const holder = await startHolder(
      p,
      mode,
      async (ref) => {
        s.holder = ref;
        await save();
      },
      cloud,
      cloud === 'ec2' ? undefined : model.instanceId,
    );
    s.holder = holder;
    await save();
    if (cloud === 'configdrive') {
      // Nova writes the drive once, at boot: later attaches never reach it.
      progress(opts, `writing the config drive (${CONFIG_DRIVE_DIR})`);
      await writeConfigDrive(holder.pid, model);
    }

    if (udev) {
      progress(opts, 'starting systemd-udevd in the instance');
      await installNetOnlyRules(holder.pid, MASKED_UDEV_RULES);
      s.procs.udevd = await startUdevd(p, holder.pid, async (ref) => {
        s.procs.udevd = ref;
        await save();
      });
      await save();
      s.procs.udevMonitor = await startMonitor(p, holder.pid);
      await save();
      await coldplug(holder.pid);
    }
    s.phase = 'booting';
    await save();
    progress(opts, `instance ready after ${secs(performance.now() - t0)}; booting cloud-init (${cloud === 'ec2' ? mode : cloud})`);
    const ci = await boot(p, s, opts, t0);
    return summary(p, s, false, ci);
  } catch (e) {
    s.phase = 'failed';
    s.error = (e as Error).message;
    await save().catch(() => {});
    throw e;
  }
}

/** Run the remaining boot stages (stopping before `pauseBefore`), then check cloud-init's status. */
async function boot(p: LabPaths, s: LabState, opts: UpOptions, t0: number): Promise<CloudInitStatus | undefined> {
  const save = () => saveState(p.state, s);
  const holder = s.holder!;
  for (const st of bootStages(s.options.stack)) {
    if (s.stages.some((x) => x.name === st.name && x.exitCode === 0)) continue;
    if (opts.pauseBefore && st.name === opts.pauseBefore) {
      s.phase = opts.pauseBefore === 'config' ? 'paused-before-config' : 'paused-before-final';
      await save();
      progress(opts, `paused before ${st.name} (run \`lab resume\`)`);
      return undefined;
    }
    const t = st.name === NM_STAGE || st.name === NETWORKD_STAGE ? await nmStage(p, s, st) : await runStage(p, holder.pid, st);
    s.stages = s.stages.filter((x) => x.name !== st.name).concat(t);
    await save();
    progress(opts, `${st.name}: ${secs(t.ms)}${t.exitCode ? ` (exit ${t.exitCode})` : ''}`);
    if (t.exitCode !== 0) {
      const log = await readFile(p.bootLog, 'utf8').catch(() => '');
      throw new Error(`boot stage ${st.name} failed (exit ${t.exitCode}); see ${p.bootLog}: ${log.trim().split('\n').slice(-4).join(' | ')}`);
    }
  }
  const ci = await cloudInitStatus(holder.pid);
  if (ci.status !== 'done') {
    throw new Error(`cloud-init status is ${ci.status} after boot: ${ci.errors.join('; ')}`);
  }
  s.phase = 'up';
  s.upMs = Math.round(performance.now() - t0);
  await save();
  progress(opts, `up in ${secs(s.upMs)} (cloud-init status: done)`);
  return ci;
}

/** Start the instance's system D-Bus and NetworkManager or systemd-networkd (the stage in place of `ifup -a`). */
async function nmStage(p: LabPaths, s: LabState, st: Stage): Promise<StageTiming> {
  const save = () => saveState(p.state, s);
  const t0 = performance.now();
  const holder = s.holder!;
  try {
    if (!isAlive(s.procs.dbus)) {
      s.procs.dbus = await startDbus(p, holder.pid, async (ref) => {
        s.procs.dbus = ref;
        await save();
      });
    }
    if (st.name === NETWORKD_STAGE && !isAlive(s.procs.networkd)) {
      s.procs.networkd = await startNetworkd(p, holder.pid, async (ref) => {
        s.procs.networkd = ref;
        await save();
      });
    }
    if (st.name === NM_STAGE && !isAlive(s.procs.networkManager)) {
      s.procs.networkManager = await startNetworkManager(p, holder.pid, async (ref) => {
        s.procs.networkManager = ref;
        await save();
      });
    }
    return { name: st.name, ms: Math.round(performance.now() - t0), exitCode: 0 };
  } catch (e) {
    await appendFile(p.bootLog, `===== ${st.name} failed: ${(e as Error).message}\n`);
    return { name: st.name, ms: Math.round(performance.now() - t0), exitCode: 1 };
  }
}

export async function resume(opts: LabOptions = {}): Promise<UpResult> {
  const p = labPaths(opts.name);
  return withLock(p.lock, async () => {
    const s = await mustLoad(p);
    if (s.phase === 'up') {
      progress(opts, 'not paused: already up');
      return summary(p, s, true);
    }
    if (!s.phase.startsWith('paused')) throw new UserError(`lab ${p.name} is ${s.phase}, not paused`);
    const t0 = performance.now();
    s.phase = 'booting';
    await saveState(p.state, s);
    try {
      const ci = await boot(p, s, opts, t0);
      return summary(p, s, false, ci);
    } catch (e) {
      s.phase = 'failed';
      s.error = (e as Error).message;
      await saveState(p.state, s).catch(() => {});
      throw e;
    }
  });
}
