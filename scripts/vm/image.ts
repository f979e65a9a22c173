/**
 * `vm build`: a bootable Debian 12 disk image with the project's .deb installed, cached.
 *
 *   base-<key>.tar    mmdebstrap of Debian's packages (key = suite + mirrors + package list)
 *   images/<flavour>-<key>/{disk.img,vmlinuz,initrd.img,manifest.json}
 *                     key = base key + the .deb's sha256 + this recipe; latest-<flavour> → newest
 *
 * The base is unpacked into a scratch dir, customized in a chroot inside a private mount
 * namespace (so no mount can outlive the build or be followed by the final rm -rf), then
 * written into an ext4 image with `mkfs.ext4 -d`. The kernel and initrd are copied out and
 * booted directly by QEMU (-kernel/-initrd), so the image needs no boot loader.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, readlinkSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, symlink, unlink, writeFile, chmod } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { VM_CACHE, REPO_ROOT, runTag, type Flavour, type VmCloud } from './paths.js';
import { run, which } from './proc.js';
import { UserError } from '../../src/util/errors.js';

export const SUITE = 'bookworm';
export const MIRRORS = [
  'deb http://deb.debian.org/debian bookworm main',
  'deb http://deb.debian.org/debian bookworm-updates main',
  'deb http://deb.debian.org/debian-security bookworm-security main',
];
/** The project .deb's Depends are all in here, so `dpkg -i` needs no network. (ifupdown flavour) */
export const BASE_PACKAGES = [
  'systemd-sysv',
  'udev',
  'cloud-init',
  'ifupdown',
  'isc-dhcp-client',
  'iproute2',
  'linux-image-amd64',
  'nodejs',
  'qemu-guest-agent',
  'python3',
  'util-linux',
  'procps',
  'dbus',
];

/**
 * Packages of a flavour. netplan: no ifupdown, so cloud-init 22.4 picks its netplan renderer and
 * activator (`netplan apply`, systemd-networkd); isc-dhcp-client stays for cloud-init's own
 * ephemeral DHCP in init-local (Ec2Local), as on Ubuntu.
 */
export function basePackages(flavour: Flavour): string[] {
  return BASE_PACKAGES.flatMap((p) => (p === 'ifupdown' ? STACK_PACKAGES[flavour] : [p]));
}

/**
 * The flavour's network stack packages, in place of ifupdown. networkd: systemd ships networkd;
 * systemd-resolved because cloud-init's NetworkdActivator restarts both units together.
 */
const STACK_PACKAGES: Record<Flavour, string[]> = {
  ifupdown: ['ifupdown'],
  netplan: ['netplan.io'],
  networkd: ['systemd-resolved'],
  nm: ['network-manager'],
};

/**
 * cloud.cfg.d of the image: the cloud's datasource (CLOUD_CFG on EC2), plus the renderer and
 * activator where cloud-init's default order would not pick the flavour's stack.
 */
export function cloudCfg(flavour: Flavour, cloud: VmCloud = 'ec2'): string {
  const base = cloud === 'ec2' ? CLOUD_CFG : NOVA_CLOUD_CFG[cloud];
  const pick = flavour === 'networkd' ? 'networkd' : flavour === 'nm' ? 'network-manager' : null;
  return pick ? `${base}system_info:\n  network:\n    renderers: [${pick}]\n    activators: [${pick}]\n` : base;
}

/** Units that cost boot time under TCG and do nothing for a throwaway test VM. */
export const MASKED_UNITS = [
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'man-db.timer',
  'e2scrub_all.timer',
  'e2scrub_reap.service',
  'fstrim.timer',
  'logrotate.timer',
  'dpkg-db-backup.timer',
  'systemd-tmpfiles-clean.timer',
  'getty@tty1.service',
  'getty-static.service',
  'keyboard-setup.service',
  'console-setup.service',
  'systemd-pstore.service',
  'modprobe@drm.service',
];

export const CLOUD_CFG = `# Written by cloud-hotplug's scripts/vm: the Ec2 datasource against the VM's own
# metadata service (the lab's imds.js, in the VM's network namespace).
datasource_list: [Ec2]
datasource:
  Ec2:
    metadata_urls: ['http://169.254.169.254']
    strict_id: false
    timeout: 5
    max_wait: 60
# Trimmed for a throwaway VM: nothing to grow, no locales package (C.UTF-8 is built in and
# already in /etc/default/locale, so cc_locale has nothing to do).
resize_rootfs: false
locale: C.UTF-8
`;

const TRIM = `# Trimmed for a throwaway VM (as for Ec2).
resize_rootfs: false
locale: C.UTF-8
`;

/**
 * The Nova clouds: one datasource each, so ds-identify takes it as found (a Nova guest by its
 * SMBIOS product name for OpenStack; a \`config-2\` labelled disk for ConfigDrive).
 */
const NOVA_CLOUD_CFG: Record<Exclude<VmCloud, 'ec2'>, string> = {
  openstack: `# Written by cloud-hotplug's scripts/vm: the OpenStack datasource against the VM's own Nova
# metadata service (the lab's imds.js serving /openstack, in the VM's network namespace).
datasource_list: [OpenStack]
datasource:
  OpenStack:
    metadata_urls: ['http://169.254.169.254']
    timeout: 5
    max_wait: 60
${TRIM}`,
  configdrive: `# Written by cloud-hotplug's scripts/vm: the ConfigDrive datasource, reading the VM's config-2 disk.
datasource_list: [ConfigDrive]
${TRIM}`,
};

/** Served as user-data by the VM's metadata service. */
export const USER_DATA = `#cloud-config
updates:
  network:
    when: [boot, hotplug]
`;

const CUSTOMIZE = `set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
dpkg -i /tmp/cloud-hotplug.deb >&2
rm -f /tmp/cloud-hotplug.deb
systemctl mask $MASKED >/dev/null 2>&1
systemctl enable qemu-guest-agent.service >/dev/null 2>&1 || true
case "$FLAVOUR" in netplan|networkd) systemctl enable systemd-networkd.service >/dev/null 2>&1 ;; esac
# journald: keep the journal in RAM (throwaway VM), no rate limit that could hide our event lines
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\\nStorage=volatile\\nRateLimitBurst=0\\n' >/etc/systemd/journald.conf.d/90-vm.conf
passwd -d root >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/lib/dpkg/*-old
dpkg-query -W -f='PKG \${Package} \${Version}\\n' nodejs cloud-init cloud-hotplug linux-image-amd64 qemu-guest-agent isc-dhcp-client systemd $STACK_PACKAGES
`;

/** Bump when anything written into the image changes (it is part of the cache key). */
const RECIPE_VERSION = 3;

export interface ImageManifest {
  key: string;
  flavour: Flavour;
  /** Absent: ec2. */
  cloud?: VmCloud;
  created: string;
  base: string;
  deb: string;
  debSha256: string;
  disk: string;
  kernel: string;
  initrd: string;
  buildMs: number;
  baseBuildMs: number | null;
  packages: Record<string, string>;
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

export function fileSha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

export const baseKey = (flavour: Flavour = 'ifupdown') =>
  sha(JSON.stringify({ SUITE, MIRRORS, BASE_PACKAGES: basePackages(flavour), variant: 'apt' })).slice(0, 12);
export const basePath = (flavour: Flavour = 'ifupdown') => join(VM_CACHE, `base-${baseKey(flavour)}.tar`);
/** `tag`: runTag(flavour, cloud). */
export const latestLink = (tag: string) => join(VM_CACHE, 'images', `latest-${tag}`);

type Say = (msg: string) => void;

async function requireTools(tools: [string, string][]): Promise<void> {
  const missing: string[] = [];
  for (const [cmd, pkg] of tools) if (!(await which(cmd))) missing.push(pkg);
  if (missing.length) throw new UserError(`missing tools; apt-get install ${[...new Set(missing)].join(' ')}`);
}

/** The cached base root fs tarball, built with mmdebstrap if absent. Returns [path, ms or null if cached]. */
export async function ensureBase(say: Say, rebuild = false, flavour: Flavour = 'ifupdown'): Promise<[string, number | null]> {
  const out = basePath(flavour);
  const pkgs = basePackages(flavour);
  if (existsSync(out) && !rebuild) return [out, null];
  await requireTools([['mmdebstrap', 'mmdebstrap']]);
  await mkdir(VM_CACHE, { recursive: true });
  // mmdebstrap picks the output format by extension: keep .tar at the end (and say so).
  const tmp = `${out.replace(/\.tar$/, '')}.tmp-${randomBytes(4).toString('hex')}.tar`;
  say(`building the ${flavour} base root fs with mmdebstrap (${pkgs.length} packages, takes ~2-4 min) → ${out}`);
  const t0 = Date.now();
  try {
    await run(['mmdebstrap', '--quiet', '--format=tar', '--variant=apt', `--include=${pkgs.join(',')}`, SUITE, tmp, ...MIRRORS], {
      inheritStderr: true,
      timeoutMs: 30 * 60_000,
    });
    await rename(tmp, out);
  } finally {
    await rm(tmp, { force: true });
  }
  return [out, Date.now() - t0];
}

/** Mount points under `dir` in our mount namespace (must be none before rm -rf). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m === dir || m.startsWith(dir + '/'));
}

export interface BuildOptions {
  deb: string;
  flavour: Flavour;
  /** Default ec2. */
  cloud?: VmCloud;
  rebuild?: boolean;
  rebuildBase?: boolean;
  sizeMiB?: number;
  say: Say;
}

export async function readManifest(dir: string): Promise<ImageManifest | null> {
  try {
    return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as ImageManifest;
  } catch {
    return null;
  }
}

/** The image `vm up` boots by default: the newest build of the flavour (for the cloud). */
export async function latestImage(flavour: Flavour, cloud: VmCloud = 'ec2'): Promise<ImageManifest> {
  const link = latestLink(runTag(flavour, cloud));
  let dir: string;
  try {
    dir = join(VM_CACHE, 'images', readlinkSync(link));
  } catch {
    throw new UserError(`no ${runTag(flavour, cloud)} image built yet: run "vm build${cloud === 'ec2' ? '' : ` --cloud ${cloud}`}" first`);
  }
  const m = await readManifest(dir);
  if (!m) throw new UserError(`image ${dir} is incomplete: run "vm build --rebuild"`);
  return m;
}

export async function buildImage(o: BuildOptions): Promise<{ manifest: ImageManifest; cached: boolean }> {
  if (!existsSync(o.deb)) throw new UserError(`no such .deb: ${o.deb}`);
  await requireTools([
    ['mkfs.ext4', 'e2fsprogs'],
    ['unshare', 'util-linux'],
    ['tar', 'tar'],
  ]);
  const t0 = Date.now();
  const [base, baseMs] = await ensureBase(o.say, o.rebuildBase, o.flavour);
  const debSha = await fileSha256(o.deb);
  const cloud = o.cloud ?? 'ec2';
  const tag = runTag(o.flavour, cloud);
  // EC2's recipe is what it was before clouds existed (its cached images stay valid).
  const recipe = sha(
    JSON.stringify({ RECIPE_VERSION, CUSTOMIZE, CLOUD_CFG: cloudCfg(o.flavour, cloud), MASKED_UNITS, flavour: o.flavour, size: o.sizeMiB ?? 3072, ...(cloud === 'ec2' ? {} : { cloud }) }),
  );
  const key = sha(`${baseKey(o.flavour)}:${debSha}:${recipe}`).slice(0, 12);
  const name = `${tag}-${key}`;
  const imagesDir = join(VM_CACHE, 'images');
  const dir = join(imagesDir, name);
  const have = await readManifest(dir);
  if (have && !o.rebuild && existsSync(have.disk)) {
    await setLatest(tag, name);
    return { manifest: have, cached: true };
  }
  await mkdir(imagesDir, { recursive: true });
  const work = join(VM_CACHE, `work-${randomBytes(4).toString('hex')}`);
  const root = join(work, 'root');
  const staging = join(work, 'out');
  try {
    await mkdir(root, { recursive: true });
    await mkdir(staging);
    o.say(`unpacking ${basename(base)}`);
    await run(['tar', '--numeric-owner', '--xattrs', "--xattrs-include=*", '-xpf', base, '-C', root]);

    o.say('configuring cloud-init, fstab, masks; installing the .deb in a chroot');
    await writeFile(join(root, 'etc/cloud/cloud.cfg.d/95-cloud-hotplug-vm.cfg'), cloudCfg(o.flavour, cloud));
    await writeFile(join(root, 'etc/fstab'), '/dev/vda / ext4 rw,relatime 0 0\n');
    await writeFile(join(root, 'etc/hostname'), 'localhost\n');
    await writeFile(join(root, 'etc/default/locale'), 'LANG=C.UTF-8\n');
    await copyFile(o.deb, join(root, 'tmp/cloud-hotplug.deb'));
    const script = join(work, 'customize.sh');
    await writeFile(script, `#!/bin/sh\nMASKED="${MASKED_UNITS.join(' ')}"\nFLAVOUR=${o.flavour}\nSTACK_PACKAGES="${STACK_PACKAGES[o.flavour].join(' ')}"\n${CUSTOMIZE}`);
    await chmod(script, 0o755);
    await copyFile(script, join(root, 'tmp/customize.sh'));
    // A private mount namespace: /proc for node/dpkg, gone with the process whatever happens.
    const r = await run(
      ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t proc proc "$1/proc" && exec chroot "$1" /bin/sh /tmp/customize.sh', 'sh', root],
      { timeoutMs: 10 * 60_000 },
    );
    await unlink(join(root, 'tmp/customize.sh'));
    const packages: Record<string, string> = {};
    for (const line of r.stdout.split('\n')) {
      const [tag, p, v] = line.trim().split(' ');
      if (tag === 'PKG' && p && v) packages[p] = v;
    }
    if (!packages['cloud-hotplug']) throw new Error(`cloud-hotplug is not installed in the image: ${r.stderr.slice(-500)}`);
    if (!existsSync(join(root, 'etc/udev/rules.d/90-cloud-hotplug.rules'))) throw new Error('the .deb did not install its udev rule (postinst)');

    const kernel = join(root, readlinkSync(join(root, 'vmlinuz')).replace(/^\//, ''));
    const initrd = join(root, readlinkSync(join(root, 'initrd.img')).replace(/^\//, ''));
    await copyFile(kernel, join(staging, 'vmlinuz'));
    await copyFile(initrd, join(staging, 'initrd.img'));

    const left = mountsUnder(work);
    if (left.length) throw new Error(`refusing to go on: mounts left under ${work}: ${left.join(', ')}`);
    o.say('writing ext4 image (mkfs.ext4 -d)');
    const disk = join(staging, 'disk.img');
    await run(['mkfs.ext4', '-q', '-F', '-L', 'root', '-d', root, disk, `${o.sizeMiB ?? 3072}M`]);
    await rm(root, { recursive: true, force: true });

    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
    const manifest: ImageManifest = {
      key,
      flavour: o.flavour,
      ...(cloud === 'ec2' ? {} : { cloud }),
      created: new Date().toISOString(),
      base,
      deb: o.deb,
      debSha256: debSha,
      disk: join(dir, 'disk.img'),
      kernel: join(dir, 'vmlinuz'),
      initrd: join(dir, 'initrd.img'),
      buildMs: Date.now() - t0,
      baseBuildMs: baseMs,
      packages,
    };
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    await setLatest(tag, name);
    for (const old of await pruneImages(tag, name)) o.say(`removed old image ${old}`);
    return { manifest, cached: false };
  } finally {
    if (mountsUnder(work).length === 0) await rm(work, { recursive: true, force: true });
  }
}

/**
 * Keep the newest KEEP_IMAGES images of a flavour (each is a ~1 GiB disk). A VM still running on
 * a removed image is unaffected: QEMU holds its backing file open.
 */
export const KEEP_IMAGES = 2;
export async function pruneImages(tag: string, current: string): Promise<string[]> {
  const imagesDir = join(VM_CACHE, 'images');
  // Exactly <tag>-<key>: "ifupdown-" must not match ifupdown-openstack's images.
  const mine = new RegExp(`^${tag}-[0-9a-f]{12}$`);
  const dirs = (await readdir(imagesDir)).filter((d) => mine.test(d) && d !== current);
  const dated: [string, string][] = [];
  for (const d of dirs) dated.push([d, (await readManifest(join(imagesDir, d)))?.created ?? '']);
  dated.sort((a, b) => b[1].localeCompare(a[1]));
  const gone = dated.slice(KEEP_IMAGES - 1).map(([d]) => d);
  for (const d of gone) await rm(join(imagesDir, d), { recursive: true, force: true });
  return gone;
}

async function setLatest(tag: string, name: string): Promise<void> {
  const link = latestLink(tag);
  const tmp = `${link}.${randomBytes(3).toString('hex')}`;
  await symlink(name, tmp);
  await rename(tmp, link);
}

/** Build the project .deb with scripts/package.sh and return its path. */
export async function buildDeb(say: Say): Promise<string> {
  say('building the .deb (scripts/package.sh)');
  const r = await run(['bash', join(REPO_ROOT, 'scripts/package.sh')], { inheritStderr: true, timeoutMs: 10 * 60_000 });
  const deb = r.stdout.trim().split('\n').pop() ?? '';
  if (!deb.endsWith('.deb') || !existsSync(deb)) throw new Error(`scripts/package.sh did not name a .deb: ${r.stdout.slice(-300)}`);
  return deb;
}
