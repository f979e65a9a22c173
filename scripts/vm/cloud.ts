/**
 * The VM's cloud side, in its network namespace: the bridges and gateways, a client address
 * outside every subnet, a tap per NIC, dnsmasq's hosts file, the NIC entries of the metadata
 * model, the NICs' random MACs, and (configdrive) the `config-2` disk image.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { newInterfaceId, type MetadataModel, type NicModel } from '../lab/metadata.js';
import { configDriveFiles } from '../lab/openstack-md.js';
import { CLIENT_ADDR } from '../lab/paths.js';
import { IMDS_ADDR, SUBNETS, subnetBridge, subnetGateway, type VmPaths } from './paths.js';
import { run } from './proc.js';
import { dnsmasqArgvIn, logSince, reloadHosts } from '../lab/dhcp.js';
import type { Nic, VmState } from './state.js';

export const randomMac = () => '0e:' + [...randomBytes(5)].map((b) => b.toString(16).padStart(2, '0')).join(':');

export const nsExec = (ns: string, argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];

export async function setupNetns(p: VmPaths): Promise<void> {
  await run(['ip', 'netns', 'add', p.netns]);
  // The client: an address of the lab's client network, on no subnet of the VM, so the guest's
  // replies to it follow its routing (policy rules), not a connected route.
  const lines = ['link set lo up', `addr add ${IMDS_ADDR}/32 dev lo`, `addr add ${CLIENT_ADDR}/32 dev lo`];
  for (const k of SUBNETS) {
    lines.push(`link add ${subnetBridge(k)} type bridge stp_state 0 forward_delay 0`);
    lines.push(`addr add ${subnetGateway(k)}/24 dev ${subnetBridge(k)}`);
    lines.push(`link set ${subnetBridge(k)} up`);
  }
  await run(['ip', '-n', p.netns, '-batch', '-'], { input: lines.join('\n') + '\n' });
  await run(nsExec(p.netns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']));
}

export async function addTap(p: VmPaths, tap: string, subnet: number): Promise<void> {
  await run(['ip', '-n', p.netns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await run(['ip', '-n', p.netns, 'link', 'set', tap, 'master', subnetBridge(subnet), 'up']);
}

/** The lab's dnsmasq (a static lease per MAC, DNS answering NXDOMAIN) in the VM's cloud netns. */
export const dnsmasqArgv = (p: VmPaths): string[] => dnsmasqArgvIn(nsExec(p.netns, []), p);

/** The console and logs can outgrow the lab's 1 MiB default read. */
export const readFrom = (path: string, offset: number) => logSince(path, offset, 4 << 20);

export async function writeHosts(p: VmPaths, nics: Nic[]): Promise<void> {
  await writeFile(p.dhcpHosts, nics.map((n) => `${n.mac},${n.ip},ip-${n.ip.replace(/\./g, '-')}`).join('\n') + '\n');
}

/** SIGHUP dnsmasq and wait until it logged re-reading the hosts file. */
export async function reloadDhcp(p: VmPaths, s: VmState): Promise<void> {
  if (!(await reloadHosts(p, s.procs.dnsmasq))) throw new Error('dnsmasq is not running or did not re-read its hosts file');
}

export function nicModel(n: Nic, visibleAt?: number): NicModel {
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

/**
 * The config drive as Nova writes it (once, at boot): openstack/<version>/… of the model in an
 * ISO 9660 image labelled config-2, made by genisoimage with Nova's own options.
 */
export async function writeConfigDriveIso(p: VmPaths, model: MetadataModel): Promise<string[]> {
  const files = configDriveFiles(model);
  const tree = await mkdtemp(join(p.dir, 'config-drive-'));
  const tmp = `${p.configDrive}.tmp`;
  try {
    for (const [rel, body] of Object.entries(files)) {
      await mkdir(dirname(join(tree, rel)), { recursive: true });
      await writeFile(join(tree, rel), body);
    }
    await run(['genisoimage', '-o', tmp, '-ldots', '-allow-lowercase', '-allow-multidot', '-l', '-publisher', 'cloud-hotplug vm', '-quiet', '-J', '-r', '-V', 'config-2', tree]);
    await rename(tmp, p.configDrive);
  } finally {
    await rm(tree, { recursive: true, force: true });
    await rm(tmp, { force: true });
  }
  return Object.keys(files);
}
