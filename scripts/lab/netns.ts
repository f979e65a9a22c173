/**
 * Network namespaces and links of a lab: the cloud netns (a router with one bridge per subnet,
 * the IMDS address on lo) and the instance netns (NICs = veth peers named ethN).
 */
import { existsSync } from 'node:fs';
import { run, ipNs, ipBatch } from './run.js';
import { allSubnets, IMDS_ADDR, subnetInfo } from './paths.js';
import { nsFileInode } from './proc.js';

export const netnsPath = (ns: string) => `/run/netns/${ns}`;
export const netnsExists = (ns: string) => existsSync(netnsPath(ns));
export const netnsInode = (ns: string) => nsFileInode(netnsPath(ns));

export async function createNetns(ns: string): Promise<number> {
  await run(['ip', 'netns', 'add', ns]);
  const ino = netnsInode(ns);
  if (!ino) throw new Error(`netns ${ns} vanished right after creation`);
  return ino;
}

export async function deleteNetns(ns: string): Promise<void> {
  if (!netnsExists(ns)) return;
  await run(['ip', 'netns', 'del', ns], { check: false });
  if (netnsExists(ns)) {
    // a half-made entry (mount point file without a mount): remove the file itself
    await run(['umount', '-l', netnsPath(ns)], { check: false });
    await run(['rm', '-f', netnsPath(ns)], { check: false });
  }
}

/**
 * lo, the IMDS address, a bridge + gateway per subnet (IPv4 and IPv6), forwarding on (the VPC
 * router). The IPv6 side is inert until dnsmasq sends router advertisements (`up --ipv6`).
 */
export async function setupCloud(ns: string): Promise<void> {
  const lines = ['link set lo up', `addr add ${IMDS_ADDR}/32 dev lo`];
  for (const s of allSubnets()) {
    lines.push(`link add ${s.bridge} type bridge stp_state 0 forward_delay 0`);
    lines.push(`addr add ${s.gateway}/24 dev ${s.bridge}`);
    lines.push(`addr add ${s.gateway6}/64 dev ${s.bridge} nodad`);
    lines.push(`link set ${s.bridge} up`);
  }
  await ipBatch(ns, lines);
  await run(['nsenter', `--net=${netnsPath(ns)}`, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
}

export async function setupInstance(ns: string): Promise<void> {
  await ipNs(ns, ['link', 'set', 'lo', 'up']);
}

export interface VethSpec {
  vif: string;
  ifname: string;
  mac: string;
  subnet: number;
}

/**
 * Create NICs: each a veth whose peer is born inside the instance netns under its final name
 * and MAC (so the instance sees exactly one kernel `add` uevent), cloud end on the subnet bridge.
 * All in one `ip -batch` so many NICs appear as close together as the kernel allows.
 */
export async function createVeths(cloudNs: string, instNs: string, specs: VethSpec[]): Promise<void> {
  if (!specs.length) return;
  const adds = specs.map((s) => `link add ${s.vif} type veth peer name ${s.ifname} address ${s.mac} netns ${instNs}`);
  const ups = specs.map((s) => `link set ${s.vif} master ${subnetInfo(s.subnet).bridge} up`);
  await ipBatch(cloudNs, [...adds, ...ups]);
}

/** Delete a NIC by its cloud end (the peer in the instance goes with it: a `remove` uevent). */
export async function deleteVeth(cloudNs: string, vif: string): Promise<boolean> {
  const r = await ipNs(cloudNs, ['link', 'del', vif], { check: false });
  return r.exitCode === 0;
}

export interface IfAddr {
  ifname: string;
  mac: string;
  state: string;
  addrs: string[];
}

export async function listInterfaces(ns: string): Promise<IfAddr[]> {
  const r = await ipNs(ns, ['-j', 'addr', 'show'], { check: false });
  if (r.exitCode !== 0) return [];
  const arr = JSON.parse(r.stdout || '[]') as {
    ifname: string;
    address?: string;
    operstate?: string;
    addr_info?: { family: string; local: string; prefixlen: number }[];
  }[];
  return arr.map((i) => ({
    ifname: i.ifname,
    mac: i.address ?? '',
    state: i.operstate ?? '?',
    addrs: (i.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`),
  }));
}
