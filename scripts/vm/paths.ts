/**
 * Names and paths of the VM tier. Images are cached under VM_CACHE (survives reboots);
 * a running VM's state, sockets and logs live under VM_RUN/<name>. Every network namespace
 * a VM uses is named chv-<name>, so `down` finds leftovers even without state.json.
 */
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../src/util/errors.js';
import { allSubnets, subnetInfo } from '../lab/paths.js';

export const VM_CACHE = process.env.CHV_CACHE ?? '/var/cache/cloud-hotplug-vm';
export const VM_RUN = process.env.CHV_RUN ?? '/run/cloud-hotplug-vm';
export const NETNS_PREFIX = 'chv-';
export const DEFAULT_NAME = 'vm';

/** The repository root, from dist/scripts/vm/ (compiled) or scripts/vm/ (source). */
const here = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = here.endsWith('/dist/scripts/vm') ? resolve(here, '../../..') : resolve(here, '../..');
/** The lab's compiled metadata service, run as a process (read-only reuse of the lab). */
export const IMDS_JS = join(REPO_ROOT, 'dist/scripts/lab/imds.js');

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,11}$/;

export function checkName(name: string | undefined): string {
  const n = name ?? process.env.CHV_NAME ?? DEFAULT_NAME;
  if (!NAME_RE.test(n)) throw new UserError(`invalid vm name ${JSON.stringify(n)}: 1-12 of [a-z0-9-]`);
  return n;
}

export interface VmPaths {
  name: string;
  dir: string;
  state: string;
  model: string;
  imdsSock: string;
  imdsLog: string;
  dnsmasqLog: string;
  dnsmasqPid: string;
  dhcpHosts: string;
  dhcpLeases: string;
  qmpSock: string;
  qgaSock: string;
  console: string;
  qemuLog: string;
  qemuPid: string;
  overlay: string;
  /** config-drive cloud: the `config-2` ISO 9660 image attached as a second disk. */
  configDrive: string;
  netns: string;
}

export function vmPaths(name?: string): VmPaths {
  const n = checkName(name);
  const dir = join(VM_RUN, n);
  return {
    name: n,
    dir,
    state: join(dir, 'state.json'),
    model: join(dir, 'metadata.json'),
    imdsSock: join(dir, 'imds.sock'),
    imdsLog: join(dir, 'imds.log'),
    dnsmasqLog: join(dir, 'dnsmasq.log'),
    dnsmasqPid: join(dir, 'dnsmasq.pid'),
    dhcpHosts: join(dir, 'dhcp-hosts'),
    dhcpLeases: join(dir, 'dnsmasq.leases'),
    qmpSock: join(dir, 'qmp.sock'),
    qgaSock: join(dir, 'qga.sock'),
    console: join(dir, 'console.log'),
    qemuLog: join(dir, 'qemu.log'),
    qemuPid: join(dir, 'qemu.pid'),
    overlay: join(dir, 'overlay.qcow2'),
    configDrive: join(dir, 'config-drive.iso'),
    netns: `${NETNS_PREFIX}${n}`,
  };
}

/** Subnet k (1..4) = 10.0.k.0/24, gateway .1 on bridge brK inside the VM's netns. */
/** The lab's subnets (10.0.k.0/24 on bridge brk): the shared dnsmasq argv serves exactly these. */
export const SUBNETS = allSubnets().map((s) => s.index);
export const IMDS_ADDR = '169.254.169.254';
export const subnetGateway = (k: number) => subnetInfo(k).gateway;
export const subnetBridge = (k: number) => subnetInfo(k).bridge;
export function checkSubnet(k: number): number {
  if (!SUBNETS.includes(k)) throw new UserError(`no subnet ${k}: subnets are ${SUBNETS.join(', ')}`);
  return k;
}

/** PCI slot of NIC index i (0 = boot NIC in slot 3 → ens3; hot-plugged ones 4..15 → ens4..ens15). */
export const nicSlot = (i: number) => 3 + i;
export const MAX_NICS = 13;

/**
 * ifupdown: Debian's default (ENI + dhclient). netplan: netplan.io → systemd-networkd, no ifupdown.
 * networkd: cloud-init's networkd renderer and activator, no netplan, no ifupdown. nm: Debian's
 * network-manager, cloud-init's network-manager renderer and activator.
 */
export type Flavour = 'ifupdown' | 'netplan' | 'networkd' | 'nm';
export const FLAVOURS: Flavour[] = ['ifupdown', 'netplan', 'networkd', 'nm'];

/**
 * The cloud the VM boots in. ec2: an Ec2 SMBIOS identity and the EC2 metadata tree. openstack: a
 * Nova guest (SMBIOS "OpenStack Nova") against the same service's /openstack tree. configdrive: a
 * Nova guest with a `config-2` disk written once at boot, the metadata service still beside it.
 */
export type VmCloud = 'ec2' | 'openstack' | 'configdrive';
export const VM_CLOUDS: VmCloud[] = ['ec2', 'openstack', 'configdrive'];

/** Images, results and `latest-*` links are per flavour on EC2, per flavour and cloud elsewhere. */
export const runTag = (flavour: Flavour, cloud: VmCloud = 'ec2'): string => (cloud === 'ec2' ? flavour : `${flavour}-${cloud}`);
