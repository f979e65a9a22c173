/**
 * The lab's API: a lab cloud in network namespaces running the real cloud-init in an
 * EC2-like instance. Used by the CLI (cli.ts), the integration tests and the benchmarks.
 * Every function takes `name` (default "lab"); state lives in /run/cloud-hotplug-lab/<name>/.
 */
import { mkdir, readFile, rm, readdir } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { labPaths, checkName, subnetInfo, DEFAULT_SECONDARY_SUBNET, PRIMARY_SUBNET, LAB_ROOT, CLIENT_ADDR, CLIENT_CIDR, CLIENT_GATEWAY, type LabPaths } from './paths.js';
import { withLock } from './lock.js';
import { loadState, saveState, type LabState, type LabMode, type Attachment, type StageTiming, type Phase } from './state.js';
import { createNetns, deleteNetns, setupCloud, setupInstance, createVeths, deleteVeth, netnsExists, netnsInode, netnsPath, listInterfaces, type IfAddr } from './netns.js';
import { newModel, loadModel, saveModel, newInterfaceId, visibleNics, type MetadataModel, type NicModel } from './metadata.js';
import { dnsmasqArgv, writeHostsFile, reloadHosts, waitDnsmasqReady, dhcpRelease } from './dhcp.js';
import { spawnDaemon, isAlive, killRefs, pidsInNamespaces, refOf, nsInode, type ProcRef } from './proc.js';
import {
  prepareOverlay,
  startHolder,
  nsenterArgv,
  instanceRoot,
  runStage,
  cloudInitStatus,
  readInstanceFile,
  writeInstanceFile,
  defaultUserData,
  BOOT_STAGES,
  INSTANCE_ENV,
  MASKED_UDEV_RULES,
  type CloudInitStatus,
} from './instance.js';
import { startUdevd, startMonitor, coldplug, readUdevEvents, installNetOnlyRules, type UdevEvent } from './udev.js';
import * as ctl from './imds-control.js';
import type { Fault, ImdsStats, RequestRecord } from './imds.js';
import { newAttachment, allocIps } from './alloc.js';
import {
  setupSourceCheck,
  srcCheckAddPorts,
  srcCheckDelPort,
  readSourceCheck,
  resetSourceCheck as resetSrcCheck,
  setupClient,
  clientArgv,
  PING_PY,
  TCP_JS,
  type FlowCount,
  type SrcCheckCounters,
} from './fabric.js';
import { run, sleep, waitFor } from './run.js';
import { UserError } from '../../src/util/errors.js';

export type { Fault, ImdsStats, RequestRecord, UdevEvent, LabMode, Attachment, CloudInitStatus, MetadataModel, NicModel, FlowCount, SrcCheckCounters };
export { labPaths, LAB_ROOT, NETNS_PREFIX, CLIENT_ADDR, CLIENT_CIDR, CLIENT_GATEWAY } from './paths.js';
export { parseMonitorLog } from './udev.js';

export interface LabOptions {
  name?: string;
  /** No progress lines on stderr. */
  quiet?: boolean;
}

function progress(o: LabOptions, msg: string): void {
  if (!o.quiet) process.stderr.write(`lab ${checkName(o.name)}: ${msg}\n`);
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

// ---------------------------------------------------------------------------------------------
// up / resume

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
}

export interface UpResult {
  name: string;
  mode: LabMode;
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
  const hotplugUserdata = opts.hotplugUserdata ?? true;
  const udev = opts.udev ?? true;
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
    phase: 'creating',
    createdAt: now,
    updatedAt: now,
    options: { hotplugUserdata, udev, userdataFile: opts.userdataFile, pauseBefore: opts.pauseBefore },
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

    const model = newModel(p.name, mode, userData);
    const eth0 = newAttachment(s, model, { subnet: PRIMARY_SUBNET, secondaryIps: 0, deviceNumber: 0, inMetadata: true });
    s.attachments.push(eth0);
    model.nics.push(nicModelOf(eth0));
    await saveModel(p.model, model);
    await writeHostsFile(p, s.attachments);
    await save();

    progress(opts, 'starting dnsmasq and the IMDS in the cloud namespace');
    s.procs.dnsmasq = spawnDaemon(dnsmasqArgv(p), 'dnsmasq', { log: `${p.dir}/dnsmasq.out` });
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
    await prepareOverlay(p);
    await srcCheckAddPorts(p.netnsCloud, [{ vif: eth0.vif, subnet: eth0.subnet }]);
    await createVeths(p.netnsCloud, p.netnsInst, [{ vif: eth0.vif, ifname: eth0.ifname, mac: eth0.mac, subnet: eth0.subnet }]);
    const holder = await startHolder(p, mode, async (ref) => {
      s.holder = ref;
      await save();
    });
    s.holder = holder;
    await save();

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
    progress(opts, `instance ready after ${secs(performance.now() - t0)}; booting cloud-init (${mode})`);
    const ci = await boot(p, s, opts, t0);
    return summary(p, s, false, ci);
  } catch (e) {
    s.phase = 'failed';
    s.error = (e as Error).message;
    await save().catch(() => {});
    throw e;
  }
}

function nicModelOf(a: Attachment, visibleAt?: number): NicModel {
  const sg = { id: 'sg-0c0ffee0000000001', name: 'default' };
  return {
    mac: a.mac,
    deviceNumber: a.deviceNumber,
    interfaceId: newInterfaceId(),
    subnet: a.subnet,
    ips: [...a.ips],
    securityGroups: [sg],
    ifname: a.ifname,
    ...(visibleAt ? { visibleAt } : {}),
  };
}

/** Run the remaining boot stages (stopping before `pauseBefore`), then check cloud-init's status. */
async function boot(p: LabPaths, s: LabState, opts: UpOptions, t0: number): Promise<CloudInitStatus | undefined> {
  const save = () => saveState(p.state, s);
  const holder = s.holder!;
  for (const st of BOOT_STAGES) {
    if (s.stages.some((x) => x.name === st.name && x.exitCode === 0)) continue;
    if (opts.pauseBefore && st.name === opts.pauseBefore) {
      s.phase = opts.pauseBefore === 'config' ? 'paused-before-config' : 'paused-before-final';
      await save();
      progress(opts, `paused before ${st.name} (run \`lab resume\`)`);
      return undefined;
    }
    const t = await runStage(p, holder.pid, st);
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

async function mustLoad(p: LabPaths): Promise<LabState> {
  const s = await loadState(p.state).catch(() => null);
  if (!s) throw new UserError(`no lab ${p.name} (run \`lab up --name ${p.name}\`)`);
  if (!isAlive(s.holder)) throw new UserError(`lab ${p.name} is not running (phase ${s.phase}); run \`lab down\` then \`lab up\``);
  return s;
}

// ---------------------------------------------------------------------------------------------
// NICs

export interface AttachOptions extends LabOptions {
  /** The NIC shows in metadata only this many seconds after the attach. */
  lagSeconds?: number;
  /** Secondary private IPs (besides the primary). */
  ips?: number;
  /** Subnet index 1..4 (default 2: not the primary's). */
  subnet?: number;
  /** Leave the NIC out of the metadata altogether. */
  metadata?: boolean;
  /** Device number (default: lowest free >= 1). Only for a single attach. */
  deviceNumber?: number;
}

export interface NicInfo {
  ifname: string;
  mac: string;
  deviceNumber: number;
  ips: string[];
  subnet: number;
  subnetId?: string;
  cidr: string;
  gateway: string;
  interfaceId?: string;
  /** Epoch ms when the NIC becomes visible in metadata (lag). */
  visibleAt?: number;
  inMetadata: boolean;
}

function nicInfo(a: Attachment, model: MetadataModel | null): NicInfo {
  const sub = subnetInfo(a.subnet);
  const nm = model?.nics.find((n) => n.mac === a.mac);
  return {
    ifname: a.ifname,
    mac: a.mac,
    deviceNumber: a.deviceNumber,
    ips: [...a.ips],
    subnet: a.subnet,
    subnetId: model?.subnets[String(a.subnet)]?.id,
    cidr: sub.cidr,
    gateway: sub.gateway,
    interfaceId: nm?.interfaceId,
    visibleAt: nm?.visibleAt,
    inMetadata: !!nm,
  };
}

export async function attach(opts: AttachOptions = {}): Promise<NicInfo> {
  const [nic] = await attachMany(1, opts);
  return nic!;
}

/**
 * Attach `n` NICs at once: identities, DHCP leases and metadata are prepared first, then all the
 * veths are created by one `ip -batch` (the instance sees the `add` uevents back to back).
 */
export async function attachMany(n: number, opts: AttachOptions = {}): Promise<NicInfo[]> {
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new UserError('attach count must be 1..64');
  if (opts.deviceNumber !== undefined && n !== 1) throw new UserError('--device-number needs a single attach');
  const subnet = opts.subnet ?? DEFAULT_SECONDARY_SUBNET;
  subnetInfo(subnet);
  const secondary = opts.ips ?? 0;
  if (!Number.isInteger(secondary) || secondary < 0 || secondary > 30) throw new UserError('--ips must be 0..30');
  const lag = opts.lagSeconds ?? 0;
  if (!(lag >= 0)) throw new UserError('--lag must be >= 0');
  const inMetadata = opts.metadata ?? true;
  const p = labPaths(opts.name);
  return withLock(p.lock, async () => {
    const s = await mustLoad(p);
    const model = await loadModel(p.model);
    const atts: Attachment[] = [];
    for (let i = 0; i < n; i++) {
      const a = newAttachment(s, model, { subnet, secondaryIps: secondary, deviceNumber: opts.deviceNumber, inMetadata });
      s.attachments.push(a);
      atts.push(a);
    }
    await saveState(p.state, s);
    // Under the cloud's source check from their first frame (set elements are names: the vifs need not exist yet).
    await srcCheckAddPorts(p.netnsCloud, atts.map((a) => ({ vif: a.vif, subnet: a.subnet })));
    await writeHostsFile(p, s.attachments);
    await reloadHosts(p, s.procs.dnsmasq);
    if (inMetadata) {
      const visibleAt = lag > 0 ? Date.now() + Math.round(lag * 1000) : undefined;
      for (const a of atts) model.nics.push(nicModelOf(a, visibleAt));
      await saveModel(p.model, model);
      await ctl.imdsReload(p.imdsSock).catch(() => {});
    }
    await createVeths(
      p.netnsCloud,
      p.netnsInst,
      atts.map((a) => ({ vif: a.vif, ifname: a.ifname, mac: a.mac, subnet: a.subnet })),
    );
    for (const a of atts) a.attachedAt = Date.now();
    await saveState(p.state, s);
    return atts.map((a) => nicInfo(a, inMetadata ? model : null));
  });
}

export interface DetachOptions extends LabOptions {
  /** Leave the NIC listed in metadata (like a forced detach can). */
  keepMetadata?: boolean;
}

export async function detach(iface: string, opts: DetachOptions = {}): Promise<{ ifname: string; mac: string; metadataRemoved: boolean }> {
  const p = labPaths(opts.name);
  return withLock(p.lock, async () => {
    const s = await mustLoad(p);
    const a = s.attachments.find((x) => x.ifname === iface || x.mac === iface.toLowerCase() || x.vif === iface);
    if (!a) throw new UserError(`no attached NIC ${iface} in lab ${p.name} (attached: ${s.attachments.map((x) => x.ifname).join(', ') || 'none'})`);
    const gone = await deleteVeth(p.netnsCloud, a.vif);
    if (!gone) {
      const r = await run(['ip', '-n', p.netnsInst, 'link', 'del', a.ifname], { check: false });
      if (r.exitCode !== 0) throw new Error(`could not delete ${a.vif}/${a.ifname}: ${r.stderr.trim()}`);
    }
    await srcCheckDelPort(p.netnsCloud, { vif: a.vif, subnet: a.subnet });
    s.attachments = s.attachments.filter((x) => x !== a);
    await saveState(p.state, s);
    let metadataRemoved = false;
    if (!opts.keepMetadata) {
      const model = await loadModel(p.model);
      const before = model.nics.length;
      model.nics = model.nics.filter((x) => x.mac !== a.mac);
      metadataRemoved = model.nics.length !== before;
      if (metadataRemoved) {
        await saveModel(p.model, model);
        await ctl.imdsReload(p.imdsSock).catch(() => {});
      }
    }
    await writeHostsFile(p, s.attachments);
    await reloadHosts(p, s.procs.dnsmasq);
    // free the DHCP lease so the address can be handed to another MAC later
    if (a.ips[0]) await dhcpRelease(p, a.subnet, a.ips[0], a.mac);
    return { ifname: a.ifname, mac: a.mac, metadataRemoved };
  });
}

// ---------------------------------------------------------------------------------------------
// Running things in the instance

export interface ExecOptions extends LabOptions {
  /** 'inherit' (default for the CLI) or 'pipe' (collect stdout/stderr). */
  stdio?: 'inherit' | 'pipe';
  input?: string;
  /** Extra environment (the caller's is inherited unless cleanEnv). */
  env?: Record<string, string>;
  cleanEnv?: boolean;
  cwd?: string;
  timeoutMs?: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const HIDDEN_INSIDE = ['/run', '/tmp', '/etc', '/var', '/sys', '/dev', '/proc'];
/** The checkout is carried into the instance even under /tmp or /run (see the holder script). */
const PROJECT = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');

function instanceCwd(cwd: string): string {
  if (cwd === PROJECT || cwd.startsWith(PROJECT + '/')) return cwd;
  return HIDDEN_INSIDE.some((d) => cwd === d || cwd.startsWith(d + '/')) ? '/' : cwd;
}

async function holderPid(name?: string): Promise<number> {
  const p = labPaths(name);
  const s = await mustLoad(p);
  return s.holder!.pid;
}

/** argv prefix-wrapped to run inside the instance (for callers that spawn processes themselves). */
export async function instanceCommand(argv: string[], opts: LabOptions & { cwd?: string } = {}): Promise<string[]> {
  return nsenterArgv(await holderPid(opts.name), argv, instanceCwd(opts.cwd ?? process.cwd()));
}

/** Run a command inside the instance; the exit code is passed through (never throws on it). */
export async function exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  if (!argv.length) throw new UserError('exec needs a command');
  const full = await instanceCommand(argv, opts);
  return runPassingExit(full, { stdio: opts.stdio, input: opts.input, env: opts.env, extendEnv: !opts.cleanEnv, timeoutMs: opts.timeoutMs });
}

/**
 * Run a ready argv (already wrapped for the instance or the client), never throwing on its exit:
 * the exit code passed through (124: timed out, 125: no code), the output as text.
 */
async function runPassingExit(
  full: string[],
  o: { stdio?: 'inherit' | 'pipe'; input?: string; env?: Record<string, string>; extendEnv?: boolean; timeoutMs?: number },
): Promise<ExecResult> {
  const r = await execa(full[0]!, full.slice(1), {
    reject: false,
    ...(o.stdio === 'inherit' ? { stdio: 'inherit' as const } : o.input !== undefined ? { input: o.input } : { stdin: 'ignore' as const }),
    env: o.env,
    extendEnv: o.extendEnv,
    timeout: o.timeoutMs,
    stripFinalNewline: false,
  });
  return {
    exitCode: typeof r.exitCode === 'number' ? r.exitCode : r.timedOut ? 124 : 125,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' ? r.stderr : '',
  };
}

/**
 * Host path of the instance's root filesystem (/proc/<holder>/root). Fine for plain paths; an
 * absolute symlink in the instance (e.g. /var/lib/cloud/instance) resolves against the HOST's
 * root from there, so prefer readFileInInstance for such paths.
 */
export async function instanceRootPath(opts: LabOptions = {}): Promise<string> {
  return instanceRoot(await holderPid(opts.name));
}

export async function readFileInInstance(path: string, opts: LabOptions = {}): Promise<string> {
  return readInstanceFile(await holderPid(opts.name), path);
}

export async function writeFileInInstance(path: string, data: string, opts: LabOptions & { mode?: number } = {}): Promise<void> {
  await writeInstanceFile(await holderPid(opts.name), path, data, opts.mode);
}

// ---------------------------------------------------------------------------------------------
// The client host and the cloud's source/destination check

function needClient(opts: LabOptions): LabPaths {
  const p = labPaths(opts.name);
  if (!netnsExists(p.netnsClient)) throw new UserError(`lab ${p.name} has no client namespace (not up, or made by an older lab: run \`lab down\` then \`lab up\`)`);
  return p;
}

export interface ClientExecOptions extends LabOptions {
  input?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** 'pipe' (default) or 'inherit'. */
  stdio?: 'inherit' | 'pipe';
}

/**
 * Run a command on the client host (netns chl-NAME-client: ${CLIENT_ADDR}, outside the instance's
 * subnets, routed by the cloud). Host filesystem; the exit code is passed through.
 */
export async function clientExec(argv: string[], opts: ClientExecOptions = {}): Promise<ExecResult> {
  if (!argv.length) throw new UserError('client exec needs a command');
  const p = needClient(opts);
  const full = clientArgv(p.netnsClient, argv);
  return runPassingExit(full, { stdio: opts.stdio, input: opts.input, env: opts.env, timeoutMs: opts.timeoutMs });
}

const IPV4_RE = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;

function checkTarget(ip: string): string {
  if (!IPV4_RE.test(ip)) throw new UserError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  // Only what the lab's namespaces hold: the instance subnets (10.0.K.0/24) and the client network.
  if (!ip.startsWith('10.0.')) throw new UserError(`${ip} is not a lab address (10.0.0.0/16)`);
  return ip;
}

export interface PingResult {
  sent: number;
  received: number;
}

/** ICMP echo from the client to `ip` (a raw socket in python3: no ping binary needed). */
export async function clientPing(ip: string, opts: LabOptions & { count?: number; waitMs?: number } = {}): Promise<PingResult> {
  const count = opts.count ?? 1;
  const waitMs = opts.waitMs ?? 1000;
  if (!Number.isInteger(count) || count < 1 || count > 100) throw new UserError('ping count must be 1..100');
  if (!Number.isInteger(waitMs) || waitMs < 1 || waitMs > 60_000) throw new UserError('ping wait must be 1..60000 ms');
  const r = await clientExec(['/usr/bin/python3', '-c', PING_PY, checkTarget(ip), String(count), String(waitMs)], { name: opts.name, timeoutMs: count * waitMs + 10_000 });
  if (r.exitCode !== 0) throw new Error(`ping ${ip} from the client failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as PingResult;
}

export interface TcpResult {
  ok: boolean;
  /** What the server sent before closing. */
  data: string;
  error?: string;
}

/** TCP connect from the client to ip:port; reads until the server closes. */
export async function clientTcp(ip: string, port: number, opts: LabOptions & { timeoutMs?: number } = {}): Promise<TcpResult> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UserError('port must be 1..65535');
  const ms = opts.timeoutMs ?? 3000;
  const r = await clientExec([process.execPath, '-e', TCP_JS, checkTarget(ip), String(port), String(ms)], { name: opts.name, timeoutMs: ms + 10_000 });
  if (r.exitCode !== 0) throw new Error(`tcp ${ip}:${port} from the client failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  const o = JSON.parse(r.stdout.trim().split('\n').pop()!) as TcpResult;
  return { ok: o.ok, data: o.data ?? '', ...(o.error ? { error: o.error } : {}) };
}

export interface SourceCheckFlow extends FlowCount {
  /** The instance NIC behind the vif (while attached). */
  ifname?: string;
  mac?: string;
}

export interface SourceCheck {
  present: boolean;
  drops: number;
  /** Packets the cloud let through, per (NIC, source address). */
  passed: SourceCheckFlow[];
  /** Packets the cloud dropped (source not in the NIC's subnet), per (NIC, source address). */
  dropped: SourceCheckFlow[];
}

/**
 * The cloud's source/destination check counters: every IPv4 packet that left an instance NIC,
 * per NIC and source address, passed or dropped.
 */
export async function sourceCheck(opts: LabOptions & { reset?: boolean } = {}): Promise<SourceCheck> {
  const p = labPaths(opts.name);
  if (!netnsExists(p.netnsCloud)) throw new UserError(`no lab ${p.name}`);
  const s = await loadState(p.state).catch(() => null);
  const c = await readSourceCheck(p.netnsCloud);
  if (opts.reset && c.present) await resetSrcCheck(p.netnsCloud);
  const who = (f: FlowCount): SourceCheckFlow => {
    const a = s?.attachments.find((x) => x.vif === f.vif);
    return a ? { ...f, ifname: a.ifname, mac: a.mac } : f;
  };
  return { present: c.present, drops: c.drops, passed: c.passed.map(who), dropped: c.dropped.map(who) };
}

export async function resetSourceCheck(opts: LabOptions = {}): Promise<void> {
  const p = labPaths(opts.name);
  if (!netnsExists(p.netnsCloud)) throw new UserError(`no lab ${p.name}`);
  await resetSrcCheck(p.netnsCloud);
}

// ---------------------------------------------------------------------------------------------
// Metadata

function findNic(model: MetadataModel, iface: string): NicModel {
  const k = iface.toLowerCase();
  const n = model.nics.find((x) => x.ifname === iface || x.mac === k || x.interfaceId === iface);
  if (!n) throw new UserError(`no NIC ${iface} in metadata (have: ${model.nics.map((x) => x.ifname ?? x.mac).join(', ') || 'none'})`);
  return n;
}

async function editModel<T>(opts: LabOptions, fn: (m: MetadataModel, s: LabState) => T | Promise<T>): Promise<T> {
  const p = labPaths(opts.name);
  return withLock(p.lock, async () => {
    const s = await mustLoad(p);
    const m = await loadModel(p.model);
    const r = await fn(m, s);
    await saveModel(p.model, m);
    await saveState(p.state, s);
    await ctl.imdsReload(p.imdsSock).catch(() => {});
    return r;
  });
}

export interface MetadataView {
  model: MetadataModel;
  /** MACs the IMDS serves right now (lagging NICs hidden). */
  visibleMacs: string[];
}

export async function showMetadata(opts: LabOptions = {}): Promise<MetadataView> {
  const p = labPaths(opts.name);
  const model = await loadModel(p.model).catch(() => {
    throw new UserError(`no lab ${p.name}`);
  });
  return { model, visibleMacs: visibleNics(model).map((n) => n.mac) };
}

/** Add `count` secondary private IPs to a NIC (no event in the instance, as on EC2). */
export async function addIp(iface: string, count = 1, opts: LabOptions = {}): Promise<string[]> {
  if (!Number.isInteger(count) || count < 1 || count > 30) throw new UserError('count must be 1..30');
  return editModel(opts, (m, s) => {
    const nic = findNic(m, iface);
    const ips = allocIps(s, m, nic.subnet, count);
    nic.ips.push(...ips);
    const a = s.attachments.find((x) => x.mac === nic.mac);
    if (a) a.ips.push(...ips);
    return ips;
  });
}

export async function removeIp(iface: string, ip: string, opts: LabOptions = {}): Promise<void> {
  await editModel(opts, (m, s) => {
    const nic = findNic(m, iface);
    const i = nic.ips.indexOf(ip);
    if (i < 0) throw new UserError(`${ip} is not an address of ${iface}`);
    if (i === 0) throw new UserError(`${ip} is the primary address of ${iface}; it cannot be removed`);
    nic.ips.splice(i, 1);
    const a = s.attachments.find((x) => x.mac === nic.mac);
    if (a) a.ips = a.ips.filter((x) => x !== ip);
  });
}

export async function setUserdata(content: string | null, opts: LabOptions = {}): Promise<void> {
  await editModel(opts, (m) => {
    m.userData = content;
  });
}

/** Hide a NIC from metadata for `seconds` from now (0 = show it now). */
export async function setLag(iface: string, seconds: number, opts: LabOptions = {}): Promise<void> {
  if (!(seconds >= 0)) throw new UserError('lag must be >= 0 seconds');
  await editModel(opts, (m) => {
    const nic = findNic(m, iface);
    if (seconds > 0) nic.visibleAt = Date.now() + Math.round(seconds * 1000);
    else delete nic.visibleAt;
  });
}

/** IMDSv2 only ('required', faithful default) or IMDSv1 allowed ('optional'). */
export async function setHttpTokens(v: 'required' | 'optional', opts: LabOptions = {}): Promise<void> {
  if (v !== 'required' && v !== 'optional') throw new UserError('http tokens: required or optional');
  await editModel(opts, (m) => {
    m.httpTokens = v;
  });
}

/**
 * Overwrite fields of a NIC's metadata with arbitrary values, valid or not (a MAC that is not a
 * MAC, an address that is not an address, device-number -1, shell syntax, huge lists): for
 * hostile-metadata tests. `iface` as for the other metadata commands; returns the NIC as edited.
 */
export async function setNicMetadata(
  iface: string,
  patch: Partial<Pick<NicModel, 'mac' | 'deviceNumber' | 'ips' | 'interfaceId' | 'ipv6s'>>,
  opts: LabOptions = {},
): Promise<NicModel> {
  return editModel(opts, (m) => {
    const nic = findNic(m, iface);
    Object.assign(nic, patch);
    return { ...nic };
  });
}

/** Remove a NIC from metadata only (e.g. one left behind by detach --keep-metadata). */
export async function removeNicMetadata(iface: string, opts: LabOptions = {}): Promise<void> {
  await editModel(opts, (m) => {
    const nic = findNic(m, iface);
    m.nics = m.nics.filter((x) => x !== nic);
  });
}

const sockOf = (opts: LabOptions) => labPaths(opts.name).imdsSock;

function needSock(opts: LabOptions): string {
  const s = sockOf(opts);
  if (!existsSync(s)) throw new UserError(`no IMDS for lab ${checkName(opts.name)} (is it up?)`);
  return s;
}

export const imdsStop = (opts: LabOptions = {}) => ctl.imdsStop(needSock(opts));
export const imdsStart = (opts: LabOptions = {}) => ctl.imdsStart(needSock(opts));
export async function imdsStats(opts: LabOptions & { reset?: boolean } = {}): Promise<ImdsStats> {
  const sock = needSock(opts);
  const st = await ctl.imdsStats(sock);
  if (opts.reset) await ctl.imdsResetStats(sock);
  return st;
}
export const imdsResetStats = (opts: LabOptions = {}) => ctl.imdsResetStats(needSock(opts));
/** Requests the IMDS served since `sinceMs` (epoch ms; the last 5000 are kept). */
export const imdsRequests = (sinceMs = 0, opts: LabOptions = {}) => ctl.imdsRequests(needSock(opts), sinceMs);
export const setFault = (f: Fault, opts: LabOptions = {}) => ctl.imdsSetFault(needSock(opts), f);
export const clearFault = (opts: LabOptions = {}) => ctl.imdsClearFault(needSock(opts));

// ---------------------------------------------------------------------------------------------
// udev events seen in the instance

export async function udevEvents(opts: LabOptions = {}): Promise<UdevEvent[]> {
  return readUdevEvents(labPaths(opts.name));
}

/** Now on the clock udevadm monitor stamps events with (CLOCK_MONOTONIC, seconds). */
export function monotonicNow(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

/**
 * Wait until udevd (source 'udev', i.e. after its rules ran) or the kernel (source 'kernel')
 * reported `action` for `ifname`, at or after `since` (monotonicNow() taken before the action;
 * default: any time). Returns the first such event, or null on timeout.
 */
export async function waitForUdevEvent(
  ifname: string,
  action: string,
  opts: LabOptions & { source?: 'udev' | 'kernel'; timeoutMs?: number; since?: number } = {},
): Promise<UdevEvent | null> {
  const p = labPaths(opts.name);
  const src = opts.source ?? 'udev';
  const since = opts.since ?? 0;
  return waitFor(
    async () =>
      (await readUdevEvents(p)).find(
        (e) => e.source === src && e.action === action && e.ifname === ifname && e.subsystem === 'net' && e.monotonic >= since,
      ) ?? null,
    opts.timeoutMs ?? 10_000,
    50,
  );
}

// ---------------------------------------------------------------------------------------------
// status

export interface ProcStatus {
  what: string;
  pid: number;
  alive: boolean;
}

export interface LabStatus {
  name: string;
  exists: boolean;
  labDir: string;
  phase?: Phase;
  mode?: LabMode;
  error?: string;
  netns: { cloud: string; cloudExists: boolean; inst: string; instExists: boolean; client: string; clientExists: boolean };
  /** The client host outside the instance's subnets (see clientExec). */
  client: { address: string; gateway: string; cidr: string } | null;
  /** Packets the cloud's source/destination check dropped (null: no check in this lab). */
  sourceCheckDrops: number | null;
  holderPid?: number;
  processes: ProcStatus[];
  interfaces: IfAddr[];
  nics: NicInfo[];
  metadataOnlyNics: { ifname?: string; mac: string; deviceNumber: number }[];
  imds: ImdsStats | null;
  cloudInit: CloudInitStatus | null;
  upMs?: number;
  stages: StageTiming[];
}

export async function status(opts: LabOptions = {}): Promise<LabStatus> {
  const p = labPaths(opts.name);
  const s = await loadState(p.state).catch(() => null);
  const out: LabStatus = {
    name: p.name,
    exists: !!s || existsSync(p.dir),
    labDir: p.dir,
    phase: s?.phase,
    mode: s?.mode,
    error: s?.error,
    netns: {
      cloud: p.netnsCloud,
      cloudExists: netnsExists(p.netnsCloud),
      inst: p.netnsInst,
      instExists: netnsExists(p.netnsInst),
      client: p.netnsClient,
      clientExists: netnsExists(p.netnsClient),
    },
    client: netnsExists(p.netnsClient) ? { address: CLIENT_ADDR, gateway: CLIENT_GATEWAY, cidr: CLIENT_CIDR } : null,
    sourceCheckDrops: null,
    holderPid: s?.holder?.pid,
    processes: [],
    interfaces: [],
    nics: [],
    metadataOnlyNics: [],
    imds: null,
    cloudInit: null,
    upMs: s?.upMs,
    stages: s?.stages ?? [],
  };
  if (!s) return out;
  const refs: [string, ProcRef | undefined][] = [
    ['holder', s.holder],
    ['dnsmasq', s.procs.dnsmasq],
    ['imds', s.procs.imds],
    ['systemd-udevd', s.procs.udevd],
    ['udevadm monitor', s.procs.udevMonitor],
  ];
  for (const [what, r] of refs) if (r) out.processes.push({ what, pid: r.pid, alive: isAlive(r) });
  if (out.netns.instExists) out.interfaces = await listInterfaces(p.netnsInst);
  const model = await loadModel(p.model).catch(() => null);
  out.nics = s.attachments.map((a) => nicInfo(a, model));
  if (model) {
    out.metadataOnlyNics = model.nics
      .filter((n) => !s.attachments.some((a) => a.mac === n.mac))
      .map((n) => ({ ifname: n.ifname, mac: n.mac, deviceNumber: n.deviceNumber }));
  }
  out.imds = await ctl.imdsStats(p.imdsSock).catch(() => null);
  if (out.netns.cloudExists) {
    const sc = await readSourceCheck(p.netnsCloud).catch(() => null);
    out.sourceCheckDrops = sc?.present ? sc.drops : null;
  }
  if (isAlive(s.holder)) out.cloudInit = await cloudInitStatus(s.holder!.pid).catch(() => null);
  return out;
}

// ---------------------------------------------------------------------------------------------
// down

export interface DownResult {
  name: string;
  existed: boolean;
  killed: number[];
  remaining: string[];
}

export async function down(opts: LabOptions = {}): Promise<DownResult> {
  const p = labPaths(opts.name);
  return withLock(p.lock, () => downUnlocked(p, opts), { timeoutMs: 5000, force: true });
}

async function downUnlocked(p: LabPaths, opts: LabOptions): Promise<DownResult> {
  const s = await loadState(p.state).catch(() => null);
  const existed = !!s || existsSync(p.dir) || netnsExists(p.netnsCloud) || netnsExists(p.netnsInst) || netnsExists(p.netnsClient);
  const killed: number[] = [];
  if (!existed) {
    progress(opts, 'nothing to take down');
    return { name: p.name, existed, killed, remaining: [] };
  }
  progress(opts, 'taking down');
  // 1. the processes the lab started, by PID (+ start time)
  const refs = [s?.procs.udevMonitor, s?.procs.udevd, s?.procs.imds, s?.procs.dnsmasq].filter((r): r is ProcRef => !!r);
  killed.push(...(await killRefs(refs)));
  // 2. everything else living in the lab's namespaces (dhclient, daemons, exec'd commands), then the holder
  for (let round = 0; round < 6; round++) {
    // Re-read every round, and only while the holder lives: once it is gone its mount
    // namespace's inode can be reused by another lab's, whose processes are not ours.
    const mntIno = isAlive(s?.holder) ? nsInode(s!.holder!.pid, 'mnt') : null;
    const netInos = [netnsInode(p.netnsCloud), netnsInode(p.netnsInst), netnsInode(p.netnsClient)].filter((x): x is number => !!x);
    const pids = pidsInNamespaces(netInos, mntIno ? [mntIno] : []).filter((pid) => pid !== s?.holder?.pid);
    const more: ProcRef[] = [];
    for (const pid of pids) {
      try {
        more.push(refOf(pid));
      } catch {
        /* gone */
      }
    }
    if (!more.length) break;
    killed.push(...(await killRefs(more, 500)));
  }
  if (s?.holder) killed.push(...(await killRefs([s.holder])));
  // the holder's children (none expected) and anything left
  const netInos = [netnsInode(p.netnsCloud), netnsInode(p.netnsInst), netnsInode(p.netnsClient)].filter((x): x is number => !!x);
  const left = pidsInNamespaces(netInos, []); // the holder is dead: its mnt inode may be reused
  if (left.length) {
    killed.push(...(await killRefs(left.flatMap((pid) => {
      try {
        return [refOf(pid)];
      } catch {
        return [];
      }
    }), 200)));
  }
  // 3. namespaces (their links and bridges go with them)
  await deleteNetns(p.netnsClient);
  await deleteNetns(p.netnsInst);
  await deleteNetns(p.netnsCloud);
  // 4. host mounts under the lab dir (none are made there; only a crash mid-mount could leave one)
  for (const mp of hostMountsUnder(p.dir)) await run(['umount', '-l', mp], { check: false });
  // 5. the lab dir
  await rm(p.dir, { recursive: true, force: true });
  const remaining = await leftovers(p);
  progress(opts, remaining.length ? `down, but left: ${remaining.join('; ')}` : 'down');
  return { name: p.name, existed, killed: [...new Set(killed)], remaining };
}

function hostMountsUnder(dir: string): string[] {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((mp) => mp === dir || mp.startsWith(dir + '/'))
      .reverse();
  } catch {
    return [];
  }
}

/** What of a lab still exists (empty after a clean `down`). */
export async function leftovers(pOrName: LabPaths | string | undefined): Promise<string[]> {
  const p = typeof pOrName === 'object' ? pOrName : labPaths(pOrName);
  const out: string[] = [];
  if (netnsExists(p.netnsCloud)) out.push(`netns ${p.netnsCloud}`);
  if (netnsExists(p.netnsInst)) out.push(`netns ${p.netnsInst}`);
  if (netnsExists(p.netnsClient)) out.push(`netns ${p.netnsClient}`);
  if (existsSync(p.dir)) out.push(`dir ${p.dir}`);
  for (const mp of hostMountsUnder(p.dir)) out.push(`mount ${mp}`);
  return out;
}

/** Names of labs with a state dir or a namespace on this machine. */
export async function listLabs(): Promise<string[]> {
  const names = new Set<string>();
  for (const e of await readdir(LAB_ROOT).catch(() => [] as string[])) {
    if (!e.endsWith('.lock') && !e.startsWith('.')) names.add(e);
  }
  for (const e of await readdir('/run/netns').catch(() => [] as string[])) {
    const m = /^chl-(.+)-(cloud|inst|client)$/.exec(e);
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}

export { INSTANCE_ENV, sleep };
