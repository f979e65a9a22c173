/**
 * One VM: QEMU (TCG by default) whose NICs are tap devices inside the VM's own network
 * namespace chv-<name>. That namespace is the "cloud": a bridge + gateway per subnet,
 * dnsmasq (DHCP with one static lease per MAC), and the lab's fake metadata service
 * (dist/scripts/lab/imds.js: EC2's tree, or Nova's /openstack for the OpenStack and config-drive
 * clouds) on 169.254.169.254; a config drive is an ISO disk. Nothing in it is linked to the host's
 * interfaces. Guest commands go through qemu-guest-agent (virtio-serial); hot-plug through QMP.
 * This module brings the VM up and down and reports its status; it re-exports the rest of the API:
 * state.ts (the recorded state), hotplug.ts (attach, detach), guest.ts (exec, the guest's links).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { newModel, saveModel, type MetadataModel } from '../lab/metadata.js';
import { UserError } from '../../src/util/errors.js';
import { IMDS_ADDR, IMDS_JS, SUBNETS, VM_CLOUDS, nicSlot, subnetBridge, vmPaths, type Flavour, type VmCloud, type VmPaths } from './paths.js';
import { isAlive, killRef, refOf, run, sleep, spawnDaemon, waitFor, which } from './proc.js';
import { GuestAgent } from './qmp.js';
import { latestImage, readManifest, USER_DATA, type ImageManifest } from './image.js';
import { addTap, dnsmasqArgv, nicModel, nsExec, randomMac, readFrom, setupNetns, writeConfigDriveIso, writeHosts } from './cloud.js';
import { loadState, quiet, requireState, saveState, type Nic, type Say, type VmState } from './state.js';

export { loadState, requireState, type Nic, type Say, type VmState } from './state.js';
export { attach, detach, type AttachOptions, type AttachResult, type DetachOptions } from './hotplug.js';
export { exec, guestLinks, waitGuestAddress, type GuestLink } from './guest.js';

/** qemu-system-x86_64 present? (the VM suite skips without it). */
export async function qemuAvailable(): Promise<string | null> {
  return which('qemu-system-x86_64');
}

/** A UUID that starts with "ec2": with serial == uuid, cloud-init's Ec2 identifies the platform as AWS. */
const ec2Uuid = () => {
  const h = 'ec2' + randomBytes(15).toString('hex').slice(0, 29);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
};

/**
 * The platform identity cloud-init reads from DMI. EC2: Amazon's, with serial == uuid. Nova (both
 * its clouds): product "OpenStack Nova", what detect_openstack() accepts on x86.
 */
const smbios = (cloud: VmCloud, uuid: string) =>
  cloud === 'ec2'
    ? `type=1,manufacturer=Amazon EC2,product=t3.micro,serial=${uuid},uuid=${uuid}`
    : `type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova,version=27.0.0,serial=${uuid},uuid=${uuid},family=Virtual Machine`;

// ---------------------------------------------------------------------------------------------
// up / down

export interface UpOptions {
  name?: string;
  image?: string;
  flavour?: Flavour;
  /** Default ec2. */
  cloud?: VmCloud;
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
  const cloud = o.cloud ?? 'ec2';
  if (!VM_CLOUDS.includes(cloud)) throw new UserError(`unknown cloud ${cloud} (one of ${VM_CLOUDS.join(', ')})`);
  let img: ImageManifest;
  if (o.image) {
    const m = await readManifest(o.image);
    if (!m) throw new UserError(`${o.image} has no manifest.json: not an image dir from "vm build"`);
    img = m;
  } else img = await latestImage(flavour, cloud);
  if ((img.cloud ?? 'ec2') !== cloud) throw new UserError(`image ${img.disk} is for ${img.cloud ?? 'ec2'}, not ${cloud}: its cloud-init looks for that datasource only`);
  const model: MetadataModel = newModel(`vm-${p.name}`, 'faithful', o.userData === undefined ? USER_DATA : o.userData, cloud);

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
    cloud,
    image: img.disk,
    accel: o.accel ?? 'tcg',
    netns: p.netns,
    // Nova's SMBIOS uuid and serial are the instance id.
    smbiosUuid: cloud === 'ec2' ? ec2Uuid() : model.instanceId,
    startedAt: 0,
    procs: {},
    nics: [nic0],
    hostCounter: { '1': 11 },
  };
  await saveState(p, s);
  try {
    say(`network namespace ${p.netns}: bridges ${SUBNETS.map(subnetBridge).join(',')}, metadata ${IMDS_ADDR}, dnsmasq`);
    await setupNetns(p);
    model.nics.push(nicModel(nic0));
    await saveModel(p.model, model);
    if (cloud === 'configdrive') say(`config drive ${p.configDrive}: ${(await writeConfigDriveIso(p, model)).length} files`);
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
      '-smbios', smbios(cloud, s.smbiosUuid),
      '-serial', `file:${p.console}`,
      '-chardev', `socket,id=qmp,path=${p.qmpSock},server=on,wait=off`,
      '-mon', 'chardev=qmp,mode=control',
      '-chardev', `socket,id=qga0,path=${p.qgaSock},server=on,wait=off`,
      '-device', 'virtio-serial-pci,id=vser0,addr=0x11',
      '-device', 'virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0',
      '-object', 'rng-random,filename=/dev/urandom,id=rng0',
      '-device', 'virtio-rng-pci,rng=rng0,addr=0x12',
      // Read-only, as Nova attaches it; cloud-init finds it by its label (blkid).
      ...(cloud === 'configdrive' ? ['-drive', `file=${p.configDrive},if=none,id=cd0,format=raw,readonly=on`, '-device', 'virtio-blk-pci,drive=cd0,addr=0x13'] : []),
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
// status

export async function status(name?: string): Promise<Record<string, unknown>> {
  const p = vmPaths(name);
  const s = await loadState(p);
  if (!s) return { name: p.name, up: false };
  return {
    name: s.name,
    up: isAlive(s.procs.qemu),
    flavour: s.flavour,
    cloud: s.cloud ?? 'ec2',
    accel: s.accel,
    image: s.image,
    netns: s.netns,
    procs: Object.fromEntries(Object.entries(s.procs).map(([k, r]) => [k, { pid: r!.pid, alive: isAlive(r) }])),
    boot_s: s.bootMs !== undefined ? +(s.bootMs / 1000).toFixed(1) : null,
    nics: s.nics.map((n) => ({ id: n.id, ifname: n.ifname, mac: n.mac, ip: n.ip, subnet: n.subnet, device_number: n.deviceNumber, in_metadata: n.inMetadata })),
    console: p.console,
    logs: { imds: p.imdsLog, dnsmasq: p.dnsmasqLog },
    ...(s.cloud === 'configdrive' ? { config_drive: p.configDrive } : {}),
  };
}
