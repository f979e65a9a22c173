/**
 * One VM: QEMU (TCG by default) whose NICs are tap devices inside the VM's own network
 * namespace chv-<name>. That namespace is the "cloud": a bridge + gateway per subnet,
 * dnsmasq (DHCP with one static lease per MAC), and the lab's fake EC2 metadata service
 * (dist/scripts/lab/imds.js) on 169.254.169.254. Nothing in it is linked to the host's
 * interfaces. Guest commands go through qemu-guest-agent (virtio-serial); hot-plug through QMP.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { newModel, newInterfaceId, saveModel, loadModel, type MetadataModel, type NicModel } from '../lab/metadata.js';
import { writeJsonAtomic } from '../../src/util/atomic.js';
import { UserError } from '../../src/util/errors.js';
import {
  IMDS_ADDR,
  IMDS_JS,
  MAX_NICS,
  SUBNETS,
  checkSubnet,
  nicSlot,
  subnetBridge,
  subnetGateway,
  vmPaths,
  type Flavour,
  type VmPaths,
} from './paths.js';
import { isAlive, killRef, refOf, run, sleep, spawnDaemon, waitFor, which, type ProcRef } from './proc.js';
import { GuestAgent, Qmp, type ExecResult } from './qmp.js';
import { dnsmasqArgvIn, logSince, reloadHosts } from '../lab/dhcp.js';
import { latestImage, readManifest, USER_DATA, type ImageManifest } from './image.js';

export interface Nic {
  /** 0 = boot NIC. */
  index: number;
  id: string;
  netdev: string;
  tap: string;
  mac: string;
  subnet: number;
  ip: string;
  /** Secondary private IPs metadata assigns (static, not DHCP: the OS must add them). */
  secondary?: string[];
  deviceNumber: number;
  slot: number;
  /** The guest's name for it, by PCI slot (ensN); confirmed by `attach --wait`. */
  ifname: string;
  inMetadata: boolean;
  attachedAt: number;
}

export interface VmState {
  version: 1;
  name: string;
  flavour: Flavour;
  image: string;
  accel: string;
  netns: string;
  smbiosUuid: string;
  startedAt: number;
  procs: { qemu?: ProcRef; dnsmasq?: ProcRef; imds?: ProcRef };
  nics: Nic[];
  hostCounter: Record<string, number>;
  /** ms from QEMU start to the console's "Cloud-init … finished" line. */
  bootMs?: number;
  /** ms from QEMU start until the guest agent answered. */
  agentMs?: number;
}

export type Say = (msg: string) => void;
const quiet: Say = () => {};

export async function loadState(p: VmPaths): Promise<VmState | null> {
  try {
    return JSON.parse(await readFile(p.state, 'utf8')) as VmState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

const saveState = (p: VmPaths, s: VmState) => writeJsonAtomic(p.state, s);

export async function requireState(name?: string): Promise<[VmPaths, VmState]> {
  const p = vmPaths(name);
  const s = await loadState(p);
  if (!s) throw new UserError(`vm ${p.name} is not up (no ${p.state})`);
  return [p, s];
}

/** qemu-system-x86_64 present? (the VM suite skips without it). */
export async function qemuAvailable(): Promise<string | null> {
  return which('qemu-system-x86_64');
}

const randomMac = () => '0e:' + [...randomBytes(5)].map((b) => b.toString(16).padStart(2, '0')).join(':');
/** A UUID that starts with "ec2": with serial == uuid, cloud-init's Ec2 identifies the platform as AWS. */
const ec2Uuid = () => {
  const h = 'ec2' + randomBytes(15).toString('hex').slice(0, 29);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
};

// ---------------------------------------------------------------------------------------------
// The cloud side: namespace, bridges, dnsmasq, metadata service.

const nsExec = (ns: string, argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];

async function setupNetns(p: VmPaths): Promise<void> {
  await run(['ip', 'netns', 'add', p.netns]);
  const lines = ['link set lo up', `addr add ${IMDS_ADDR}/32 dev lo`];
  for (const k of SUBNETS) {
    lines.push(`link add ${subnetBridge(k)} type bridge stp_state 0 forward_delay 0`);
    lines.push(`addr add ${subnetGateway(k)}/24 dev ${subnetBridge(k)}`);
    lines.push(`link set ${subnetBridge(k)} up`);
  }
  await run(['ip', '-n', p.netns, '-batch', '-'], { input: lines.join('\n') + '\n' });
  await run(nsExec(p.netns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']));
}

async function addTap(p: VmPaths, tap: string, subnet: number): Promise<void> {
  await run(['ip', '-n', p.netns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await run(['ip', '-n', p.netns, 'link', 'set', tap, 'master', subnetBridge(subnet), 'up']);
}

/** The lab's dnsmasq (a static lease per MAC, DNS answering NXDOMAIN) in the VM's cloud netns. */
const dnsmasqArgv = (p: VmPaths): string[] => dnsmasqArgvIn(nsExec(p.netns, []), p);

/** The console and logs can outgrow the lab's 1 MiB default read. */
const readFrom = (path: string, offset: number) => logSince(path, offset, 4 << 20);

async function writeHosts(p: VmPaths, nics: Nic[]): Promise<void> {
  await writeFile(p.dhcpHosts, nics.map((n) => `${n.mac},${n.ip},ip-${n.ip.replace(/\./g, '-')}`).join('\n') + '\n');
}

/** SIGHUP dnsmasq and wait until it logged re-reading the hosts file. */
async function reloadDhcp(p: VmPaths, s: VmState): Promise<void> {
  if (!(await reloadHosts(p, s.procs.dnsmasq))) throw new Error('dnsmasq is not running or did not re-read its hosts file');
}

function nicModel(n: Nic, visibleAt?: number): NicModel {
  return {
    mac: n.mac,
    deviceNumber: n.deviceNumber,
    interfaceId: newInterfaceId(),
    subnet: n.subnet,
    ips: [n.ip, ...(n.secondary ?? [])],
    securityGroups: [{ id: 'sg-0a1b2c3d4e5f60718', name: 'default' }],
    visibleAt,
    ifname: n.ifname,
  };
}

// ---------------------------------------------------------------------------------------------
// up / down

export interface UpOptions {
  name?: string;
  image?: string;
  flavour?: Flavour;
  memMiB?: number;
  accel?: 'tcg' | 'kvm';
  /** Wait for cloud-init to finish and the guest agent to answer (default true). */
  wait?: boolean;
  timeoutMs?: number;
  userData?: string | null;
  say?: Say;
}

export async function up(o: UpOptions = {}): Promise<VmState> {
  const say = o.say ?? quiet;
  const p = vmPaths(o.name);
  const old = await loadState(p);
  if (old && isAlive(old.procs.qemu)) throw new UserError(`vm ${p.name} is already up (qemu pid ${old.procs.qemu!.pid}); "vm down" first`);
  await down({ name: p.name });
  if (!(await qemuAvailable())) throw new UserError('qemu-system-x86_64 not found: apt-get install qemu-system-x86 qemu-utils');
  if (!existsSync(IMDS_JS)) throw new UserError(`${IMDS_JS} missing: build the project first (npx tsc -p tsconfig.json)`);
  const flavour = o.flavour ?? 'ifupdown';
  let img: ImageManifest;
  if (o.image) {
    const m = await readManifest(o.image);
    if (!m) throw new UserError(`${o.image} has no manifest.json: not an image dir from "vm build"`);
    img = m;
  } else img = await latestImage(flavour);

  await mkdir(p.dir, { recursive: true, mode: 0o755 });
  const nic0: Nic = {
    index: 0,
    id: 'nic0',
    netdev: 'net0',
    tap: 'tap0',
    mac: randomMac(),
    subnet: 1,
    ip: '10.0.1.10',
    deviceNumber: 0,
    slot: nicSlot(0),
    ifname: `ens${nicSlot(0)}`,
    inMetadata: true,
    attachedAt: Date.now(),
  };
  const s: VmState = {
    version: 1,
    name: p.name,
    flavour,
    image: img.disk,
    accel: o.accel ?? 'tcg',
    netns: p.netns,
    smbiosUuid: ec2Uuid(),
    startedAt: 0,
    procs: {},
    nics: [nic0],
    hostCounter: { '1': 11 },
  };
  await saveState(p, s);
  try {
    say(`network namespace ${p.netns}: bridges ${SUBNETS.map(subnetBridge).join(',')}, metadata ${IMDS_ADDR}, dnsmasq`);
    await setupNetns(p);
    const model: MetadataModel = newModel(`vm-${p.name}`, 'faithful', o.userData === undefined ? USER_DATA : o.userData);
    model.nics.push(nicModel(nic0));
    await saveModel(p.model, model);
    await writeHosts(p, s.nics);
    s.procs.dnsmasq = spawnDaemon(dnsmasqArgv(p), `${p.dnsmasqLog}.out`, 'dnsmasq');
    s.procs.imds = spawnDaemon(nsExec(p.netns, [process.execPath, IMDS_JS, '--model', p.model, '--socket', p.imdsSock]), p.imdsLog, 'imds');
    await saveState(p, s);
    const ready = await waitFor(
      async () =>
        (await readFrom(p.dnsmasqLog, 0)).includes(`read ${p.dhcpHosts}`) && (await readFrom(p.imdsLog, 0)).includes('imds: listening'),
      10_000,
      50,
    );
    if (!ready) throw new Error(`dnsmasq or the metadata service did not start: see ${p.dnsmasqLog}, ${p.imdsLog}`);
    await addTap(p, nic0.tap, nic0.subnet);

    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', img.disk, p.overlay]);
    const argv = [
      'qemu-system-x86_64',
      '-name', `chv-${p.name}`,
      '-machine', `pc,accel=${s.accel}`,
      '-smp', '1',
      '-m', String(o.memMiB ?? 1024),
      '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none',
      '-kernel', img.kernel,
      '-initrd', img.initrd,
      '-append', 'root=/dev/vda rw console=ttyS0 net.ifnames=1 quiet mitigations=off',
      '-drive', `file=${p.overlay},if=none,id=disk0,format=qcow2,cache=unsafe`,
      '-device', 'virtio-blk-pci,drive=disk0,addr=0x10',
      '-smbios', `type=1,manufacturer=Amazon EC2,product=t3.micro,serial=${s.smbiosUuid},uuid=${s.smbiosUuid}`,
      '-serial', `file:${p.console}`,
      '-chardev', `socket,id=qmp,path=${p.qmpSock},server=on,wait=off`,
      '-mon', 'chardev=qmp,mode=control',
      '-chardev', `socket,id=qga0,path=${p.qgaSock},server=on,wait=off`,
      '-device', 'virtio-serial-pci,id=vser0,addr=0x11',
      '-device', 'virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0',
      '-object', 'rng-random,filename=/dev/urandom,id=rng0',
      '-device', 'virtio-rng-pci,rng=rng0,addr=0x12',
      '-netdev', `tap,id=${nic0.netdev},ifname=${nic0.tap},script=no,downscript=no`,
      '-device', `virtio-net-pci,id=${nic0.id},netdev=${nic0.netdev},mac=${nic0.mac},addr=0x${nic0.slot.toString(16)}`,
      '-D', p.qemuLog,
      '-pidfile', p.qemuPid,
      '-daemonize',
    ];
    say(`starting QEMU (${s.accel}) on ${img.disk}`);
    s.startedAt = Date.now();
    await run(nsExec(p.netns, argv), { timeoutMs: 30_000 });
    const pid = Number((await readFile(p.qemuPid, 'utf8')).trim());
    s.procs.qemu = refOf(pid, 'qemu');
    await saveState(p, s);
  } catch (e) {
    await down({ name: p.name }).catch(() => {});
    throw e;
  }
  if (o.wait ?? true) await waitBooted(p, s, o.timeoutMs ?? 900_000, say);
  return s;
}

/** Wait until the serial console shows `re` (e.g. a cloud-init stage starting); false at timeout. */
export async function waitConsole(re: RegExp, o: { name?: string; timeoutMs: number }): Promise<boolean> {
  const [p, s] = await requireState(o.name);
  return waitFor(
    async () => {
      if (!isAlive(s.procs.qemu)) throw new Error(`qemu exited; see ${p.console}`);
      return re.test(await readFrom(p.console, 0));
    },
    o.timeoutMs,
    250,
  );
}

/** Has cloud-init printed its "finished" line on the console yet? */
export async function bootFinished(name?: string): Promise<boolean> {
  return FINISHED.test(await readFrom(vmPaths(name).console, 0));
}
const FINISHED = /Cloud-init v\. \S+ finished at/;

/** For `up({ wait: false })`: wait for cloud-init to finish and the guest agent, as `up` does. */
export async function waitUp(o: { name?: string; timeoutMs?: number; say?: Say } = {}): Promise<VmState> {
  const [p, s] = await requireState(o.name);
  await waitBooted(p, s, o.timeoutMs ?? 900_000, o.say ?? quiet);
  return s;
}

/** Wait for the console's "Cloud-init v. … finished" line, then for the guest agent. */
export async function waitBooted(p: VmPaths, s: VmState, timeoutMs: number, say: Say = quiet): Promise<void> {
  const end = s.startedAt + timeoutMs;
  say('waiting for cloud-init to finish (console) ...');
  for (;;) {
    if (!isAlive(s.procs.qemu)) throw new Error(`qemu exited during boot; see ${p.console} and ${p.qemuLog}`);
    const con = await readFrom(p.console, 0);
    if (FINISHED.test(con)) break;
    if (Date.now() > end) throw new Error(`cloud-init did not finish within ${Math.round(timeoutMs / 1000)} s; see ${p.console}`);
    await sleep(500);
  }
  s.bootMs = Date.now() - s.startedAt;
  say(`cloud-init finished ${(s.bootMs / 1000).toFixed(1)} s after QEMU started`);
  const ga = new GuestAgent(p.qgaSock);
  const ok = await waitFor(() => ga.ping(3000), Math.max(10_000, end - Date.now()), 500);
  if (!ok) throw new Error('the guest agent does not answer (qemu-guest-agent not running in the guest?)');
  s.agentMs = Date.now() - s.startedAt;
  await saveState(p, s);
}

export async function down(o: { name?: string; say?: Say } = {}): Promise<string[]> {
  const say = o.say ?? quiet;
  const p = vmPaths(o.name);
  const s = await loadState(p);
  const done: string[] = [];
  // QEMU first (by PID + start time from state; else by its pidfile, if that process is ours).
  let qemu = s?.procs.qemu;
  if (!qemu && existsSync(p.qemuPid)) {
    const pid = Number(readFileSync(p.qemuPid, 'utf8').trim());
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(p.qmpSock)) qemu = refOf(pid, 'qemu');
    } catch {
      /* gone */
    }
  }
  for (const ref of [qemu, s?.procs.dnsmasq, s?.procs.imds]) {
    if (ref && (await killRef(ref))) done.push(`killed ${ref.what} (pid ${ref.pid})`);
  }
  if (existsSync(`/run/netns/${p.netns}`)) {
    await run(['ip', 'netns', 'del', p.netns], { check: false });
    done.push(`deleted netns ${p.netns} (its taps and bridges with it)`);
  }
  if (existsSync(p.dir)) {
    await rm(p.dir, { recursive: true, force: true });
    done.push(`removed ${p.dir}`);
  }
  for (const d of done) say(d);
  return done;
}

// ---------------------------------------------------------------------------------------------
// attach / detach

export interface AttachOptions {
  name?: string;
  subnet?: number;
  /** Add the NIC to the metadata service (default true). */
  metadata?: boolean;
  /** Metadata shows the NIC only this many ms after the attach (like EC2's lag). */
  metadataLagMs?: number;
  /** How many secondary private IPs metadata lists for the NIC (default 0). */
  secondaryIps?: number;
  /** Wait until the guest has the NIC's DHCP address (default true). */
  wait?: boolean;
  timeoutMs?: number;
  say?: Say;
}

export interface AttachResult {
  nic: Nic;
  /** ms from device_add to the guest having the address (when waited for). */
  configuredMs?: number;
}

export async function attach(o: AttachOptions = {}): Promise<AttachResult> {
  const say = o.say ?? quiet;
  const [p, s] = await requireState(o.name);
  if (!isAlive(s.procs.qemu)) throw new UserError(`vm ${p.name}: qemu is not running`);
  const subnet = checkSubnet(o.subnet ?? 2);
  const index = Math.max(...s.nics.map((n) => n.index)) + 1;
  if (index >= MAX_NICS) throw new UserError(`no free PCI slot (at most ${MAX_NICS} NICs)`);
  const nSecondary = o.secondaryIps ?? 0;
  if (!Number.isInteger(nSecondary) || nSecondary < 0 || nSecondary > 8) throw new UserError('--secondary-ips: 0 to 8');
  const host = s.hostCounter[String(subnet)] ?? 10;
  if (host + nSecondary > 250) throw new UserError(`subnet ${subnet} has no free addresses left`);
  s.hostCounter[String(subnet)] = host + 1 + nSecondary;
  const used = new Set(s.nics.map((n) => n.deviceNumber));
  let dn = 1;
  while (used.has(dn)) dn++;
  const nic: Nic = {
    index,
    id: `nic${index}`,
    netdev: `net${index}`,
    tap: `tap${index}`,
    mac: randomMac(),
    subnet,
    ip: `10.0.${subnet}.${host}`,
    secondary: Array.from({ length: nSecondary }, (_, i) => `10.0.${subnet}.${host + 1 + i}`),
    deviceNumber: dn,
    slot: nicSlot(index),
    ifname: `ens${nicSlot(index)}`,
    inMetadata: o.metadata ?? true,
    attachedAt: 0,
  };
  if (nic.inMetadata) {
    const model = await loadModel(p.model);
    model.nics.push(nicModel(nic, o.metadataLagMs ? Date.now() + o.metadataLagMs : undefined));
    await saveModel(p.model, model);
  }
  await writeHosts(p, [...s.nics, nic]);
  await reloadDhcp(p, s);
  await addTap(p, nic.tap, subnet);
  const qmp = await Qmp.connect(p.qmpSock);
  try {
    await qmp.cmd('netdev_add', { type: 'tap', id: nic.netdev, ifname: nic.tap, script: 'no', downscript: 'no' });
    nic.attachedAt = Date.now();
    await qmp.cmd('device_add', { driver: 'virtio-net-pci', id: nic.id, netdev: nic.netdev, mac: nic.mac, bus: 'pci.0', addr: `0x${nic.slot.toString(16)}` });
  } finally {
    qmp.close();
  }
  s.nics.push(nic);
  await saveState(p, s);
  say(`attached ${nic.id} mac=${nic.mac} ip=${nic.ip}${nic.secondary!.length ? ` secondary=${nic.secondary!.join(',')}` : ''} subnet=${subnet} device-number=${dn} (guest name ${nic.ifname})${nic.inMetadata ? '' : ' (not in metadata)'}`);
  const res: AttachResult = { nic };
  if (o.wait ?? true) {
    const got = await waitGuestAddress(p, nic.mac, nic.ip, o.timeoutMs ?? 180_000);
    if (!got) throw new Error(`the guest did not configure ${nic.mac} with ${nic.ip} within ${Math.round((o.timeoutMs ?? 180_000) / 1000)} s`);
    nic.ifname = got;
    res.configuredMs = Date.now() - nic.attachedAt;
    await saveState(p, s);
    say(`guest configured ${got} with ${nic.ip} ${(res.configuredMs / 1000).toFixed(1)} s after device_add`);
  }
  return res;
}

export interface GuestLink {
  ifname: string;
  address: string;
  operstate: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export async function guestLinks(p: VmPaths): Promise<GuestLink[]> {
  const r = await new GuestAgent(p.qgaSock).exec(['ip', '-j', 'addr', 'show'], { timeoutMs: 20_000 });
  if (r.exitCode !== 0) throw new Error(`ip addr in guest: ${r.stderr}`);
  return JSON.parse(r.stdout || '[]') as GuestLink[];
}

/** Poll the guest until the interface with `mac` has `ip`; returns its name (null at timeout). */
export async function waitGuestAddress(p: VmPaths, mac: string, ip: string, timeoutMs: number): Promise<string | null> {
  let name: string | null = null;
  await waitFor(
    async () => {
      const l = (await guestLinks(p).catch(() => [])).find((x) => x.address === mac);
      if (l && (l.addr_info ?? []).some((a) => a.family === 'inet' && a.local === ip)) name = l.ifname;
      return name;
    },
    timeoutMs,
    250,
  );
  return name;
}

export interface DetachOptions {
  name?: string;
  /** MAC, guest interface name, or nicN; default: the last attached NIC. */
  target?: string;
  /** Leave the NIC in the metadata service (like EC2's lag on detach). */
  keepMetadata?: boolean;
  timeoutMs?: number;
  say?: Say;
}

export async function detach(o: DetachOptions = {}): Promise<{ nic: Nic; deletedMs: number }> {
  const say = o.say ?? quiet;
  const [p, s] = await requireState(o.name);
  const hot = s.nics.filter((n) => n.index > 0);
  const t = o.target?.toLowerCase();
  const nic = t ? s.nics.find((n) => n.mac === t || n.ifname === t || n.id === t) : hot[hot.length - 1];
  if (!nic) throw new UserError(t ? `no NIC ${t} on vm ${p.name}` : `vm ${p.name} has no hot-plugged NIC`);
  const qmp = await Qmp.connect(p.qmpSock);
  const t0 = Date.now();
  try {
    await qmp.cmd('device_del', { id: nic.id });
    // The guest acknowledges the ACPI eject; only then is the device gone.
    await qmp.event('DEVICE_DELETED', (d) => d.device === nic.id, o.timeoutMs ?? 60_000);
    await qmp.cmd('netdev_del', { id: nic.netdev });
  } finally {
    qmp.close();
  }
  const deletedMs = Date.now() - t0;
  await run(['ip', '-n', p.netns, 'link', 'del', nic.tap], { check: false });
  s.nics = s.nics.filter((n) => n !== nic);
  if (!o.keepMetadata) {
    const model = await loadModel(p.model);
    model.nics = model.nics.filter((n) => n.mac !== nic.mac);
    await saveModel(p.model, model);
  }
  await writeHosts(p, s.nics);
  await reloadDhcp(p, s).catch(() => {});
  await saveState(p, s);
  say(`detached ${nic.id} (${nic.ifname}, ${nic.mac}); the guest released the device in ${(deletedMs / 1000).toFixed(1)} s`);
  return { nic, deletedMs };
}

// ---------------------------------------------------------------------------------------------
// exec / status

export async function exec(argv: string[], o: { name?: string; timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
  const [p, s] = await requireState(o.name);
  if (!isAlive(s.procs.qemu)) throw new UserError(`vm ${p.name}: qemu is not running`);
  if (!argv.length) throw new UserError('nothing to run');
  return new GuestAgent(p.qgaSock).exec(argv, { timeoutMs: o.timeoutMs, input: o.input });
}

export async function status(name?: string): Promise<Record<string, unknown>> {
  const p = vmPaths(name);
  const s = await loadState(p);
  if (!s) return { name: p.name, up: false };
  return {
    name: s.name,
    up: isAlive(s.procs.qemu),
    accel: s.accel,
    image: s.image,
    netns: s.netns,
    procs: Object.fromEntries(Object.entries(s.procs).map(([k, r]) => [k, { pid: r!.pid, alive: isAlive(r) }])),
    boot_s: s.bootMs !== undefined ? +(s.bootMs / 1000).toFixed(1) : null,
    nics: s.nics.map((n) => ({ id: n.id, ifname: n.ifname, mac: n.mac, ip: n.ip, subnet: n.subnet, device_number: n.deviceNumber, in_metadata: n.inMetadata })),
    console: p.console,
    logs: { imds: p.imdsLog, dnsmasq: p.dnsmasqLog },
  };
}
