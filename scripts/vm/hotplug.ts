/**
 * NIC hot-plug through QMP: attach (metadata, DHCP lease, tap, netdev_add + device_add, then wait
 * for the guest's address) and detach (device_del, wait for the guest's eject, clean up).
 */
import { UserError } from '../../src/util/errors.js';
import { loadModel, saveModel } from '../lab/metadata.js';
import { MAX_NICS, checkSubnet, nicSlot } from './paths.js';
import { isAlive, run } from './proc.js';
import { Qmp } from './qmp.js';
import { addTap, nicModel, randomMac, reloadDhcp, writeHosts } from './cloud.js';
import { waitGuestAddress } from './guest.js';
import { quiet, requireState, saveState, type Nic, type Say } from './state.js';

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
