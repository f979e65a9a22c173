/**
 * Can the VM tier run on this host? One line per reason it cannot (empty: it can), so the VM
 * suite fails with the reason instead of skipping. No KVM is not a reason: QEMU falls back to TCG.
 * scripts/setup-vm.sh installs every package named here.
 */
import { existsSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { which } from './proc.js';
import { basePath } from './image.js';
import { VM_CACHE, VM_RUN, type Flavour, type VmCloud } from './paths.js';

/** Host commands and the Debian package of each (scripts/setup-vm.sh installs these). */
export const VM_TOOLS: [cmd: string, pkg: string][] = [
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['qemu-img', 'qemu-utils'],
  ['mkfs.ext4', 'e2fsprogs'],
  ['unshare', 'util-linux'],
  ['tar', 'tar'],
  ['dpkg-deb', 'dpkg'],
  ['ip', 'iproute2'],
  ['dnsmasq', 'dnsmasq-base'],
];

/**
 * Room the run needs, at least (not measured per run, a margin over what one leaves behind):
 * the cache holds the base root fs tarball and a 3 GiB sparse ext4 image per .deb; the run dir
 * (tmpfs) the VM's qcow2 overlay, which grows with what the guest writes.
 */
export const MIN_FREE_CACHE_MIB = 4096;
export const MIN_FREE_RUN_MIB = 1024;

/** Free MiB on the filesystem that holds `path` (or would: its nearest existing parent). */
export function freeMiB(path: string): number {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  const s = statfsSync(p);
  return Math.floor((s.bavail * s.bsize) / 2 ** 20);
}

export async function preflight(flavour: Flavour, cloud: VmCloud = 'ec2'): Promise<string[]> {
  const why: string[] = [];
  if (process.getuid?.() !== 0) why.push('not root (the VM tier needs network namespaces, taps and a chroot)');
  const tools: [string, string][] = [...VM_TOOLS];
  // mmdebstrap only builds the base root fs; a cached one is enough.
  if (!existsSync(basePath(flavour))) tools.push(['mmdebstrap', 'mmdebstrap']);
  // The config drive is an ISO 9660 image, made as Nova makes it.
  if (cloud === 'configdrive') tools.push(['genisoimage', 'genisoimage']);
  const missing: string[] = [];
  for (const [cmd, pkg] of tools) if (!(await which(cmd))) missing.push(`${cmd} (${pkg})`);
  if (missing.length) why.push(`missing ${missing.join(', ')}: run scripts/setup-vm.sh`);
  if (!existsSync('/dev/net/tun')) why.push('no /dev/net/tun (QEMU needs taps: modprobe tun)');
  for (const [dir, min] of [[VM_CACHE, MIN_FREE_CACHE_MIB], [VM_RUN, MIN_FREE_RUN_MIB]] as const) {
    const free = freeMiB(dir);
    if (free < min) why.push(`only ${free} MiB free for ${dir}, at least ${min} MiB needed`);
  }
  return why;
}
