/**
 * The instance: one long-lived "holder" process owning the instance's netns (joined), mount
 * namespace (private: overlays over /etc and /var, tmpfs /run and /tmp, a fresh netns-aware
 * sysfs, a private /dev) and UTS namespace. Every instance command joins it with nsenter.
 */
import { mkdir, readFile, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic } from '../../src/util/atomic.js';
import { INSTANCE_PATH, subnetInfo, PRIMARY_SUBNET, IMDS_ADDR, type LabPaths } from './paths.js';
import { netnsPath } from './netns.js';
import { spawnDaemon, isAlive, procComm, nsInode, type ProcRef } from './proc.js';
import { run, sleep, type RunOptions, type RunResult } from './run.js';
import type { LabMode, StageTiming } from './state.js';
import { networkSystemInfo, type LabStack } from './nm.js';
import type { Cloud } from './metadata.js';

/** Runs as `sh holder-setup.sh OVERLAY_DIR MODE HYPERVISOR_UUID HOSTNAME PROJECT CLOUD`; data only as "$N". */
export const HOLDER_SCRIPT = `#!/bin/sh
# cloud-hotplug lab: mount setup of the instance (new mount + UTS namespaces, inside its netns).
# Ends by exec'ing "sleep infinity": that process is the holder of the namespaces.
set -eu
OV="$1"; MODE="$2"; UUID="$3"; HN="$4"; PROJ="\${5:-}"; CLOUD="\${6:-ec2}"

# 1. copy-on-write /etc and /var; upper and work dirs live in the lab dir on the host
for d in etc var; do
  mount -t overlay "lab-$d" -o "lowerdir=/$d,upperdir=$OV/$d/upper,workdir=$OV/$d/work" "/$d"
done
if [ "$(stat -f -c %T /etc)" != overlayfs ] || [ "$(stat -f -c %T /var)" != overlayfs ]; then
  echo "holder: overlays not in place, refusing to go on" >&2; exit 1
fi
# forget the host's cloud-init and DHCP state (whiteouts in the upper dirs only)
rm -rf /var/lib/cloud /var/log/cloud-init.log /var/log/cloud-init-output.log /var/log/cloud-hotplug.log
rm -f /var/lib/dhcp/*.leases /var/lib/dhcp/*.lease /etc/cloud/cloud-init.disabled
find /etc/network/interfaces.d -mindepth 1 -maxdepth 1 ! -name 'lab-keep' -exec rm -rf {} +
# a Nova guest is a VM: this machine may look like a container, and cloud-init ignores DMI in one
if [ "$CLOUD" != ec2 ]; then
  mount --bind "$OV/detect-virt" "$(command -v systemd-detect-virt || echo /usr/bin/systemd-detect-virt)"
fi

# 2. private /tmp and /run (this hides the lab dir from the instance). A project checkout
#    under /tmp or /run (CI clones anywhere) is carried over so its CLI runs inside.
case "$PROJ" in
  /tmp/*|/run/*) mkdir -p /var/tmp/.lab-proj && mount --rbind "$PROJ" /var/tmp/.lab-proj ;;
  *) PROJ="" ;;
esac
mount -t tmpfs -o mode=1777,nosuid,nodev lab-tmp /tmp
mount -t tmpfs -o mode=755,nosuid,nodev lab-run /run
if [ -n "$PROJ" ]; then mkdir -p "$PROJ" && mount --move /var/tmp/.lab-proj "$PROJ"; fi
mkdir -p /run/lock /run/network /run/udev /run/sendsigs.omit.d
chmod 1777 /run/lock

# 3. sysfs of this netns under a tmpfs /sys, plus the platform identity cloud-init reads
mkdir /tmp/.lab-sys
mount -t sysfs lab-sysfs /tmp/.lab-sys
mount -t tmpfs -o mode=755,nosuid,nodev,noexec lab-sys /sys
for d in /tmp/.lab-sys/*; do
  b="\${d##*/}"
  [ "$b" = hypervisor ] && continue
  [ "$b" = class ] && [ "$CLOUD" != ec2 ] && continue
  mkdir "/sys/$b"
  mount --rbind "$d" "/sys/$b"
done
if [ "$CLOUD" != ec2 ]; then
  # /sys/class of this netns, but with a DMI identity of its own: what Nova's SMBIOS says
  mkdir /sys/class
  mount -t tmpfs -o mode=755,nosuid,nodev,noexec lab-class /sys/class
  for d in /tmp/.lab-sys/class/*; do
    b="\${d##*/}"
    [ "$b" = dmi ] && continue
    mkdir "/sys/class/$b"
    mount --rbind "$d" "/sys/class/$b"
  done
  mkdir -p /sys/class/dmi/id
  printf 'OpenStack Nova\\n' > /sys/class/dmi/id/product_name
  printf 'OpenStack Foundation\\n' > /sys/class/dmi/id/sys_vendor
  printf '%s\\n' "$UUID" > /sys/class/dmi/id/product_uuid
  printf '%s\\n' "$UUID" > /sys/class/dmi/id/product_serial
  : > /sys/class/dmi/id/chassis_asset_tag
fi
umount /tmp/.lab-sys
rmdir /tmp/.lab-sys
if [ "$CLOUD" != ec2 ]; then
  :
elif [ "$MODE" = faithful ]; then
  mkdir /sys/hypervisor
  printf '%s\\n' "$UUID" > /sys/hypervisor/uuid
  printf 'xen\\n' > /sys/hypervisor/type
elif [ -d /sys/class/dmi/id ]; then
  # generic: hide any real DMI identity so the platform stays unknown
  mount -t tmpfs -o size=16k,mode=755 lab-nodmi /sys/class/dmi/id
fi
mount -o remount,bind,ro /sys

# 4. a private /dev: udevd in here must never touch the host's device nodes
mkdir /tmp/.lab-hostdev
mount --bind /dev /tmp/.lab-hostdev
mount -t tmpfs -o mode=755,nosuid lab-dev /dev
for n in null zero full random urandom tty; do
  touch "/dev/$n"
  mount --bind "/tmp/.lab-hostdev/$n" "/dev/$n"
done
umount /tmp/.lab-hostdev
rmdir /tmp/.lab-hostdev
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 lab-devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev lab-shm /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr

# 5. identity before cloud-init names it
hostname "$HN"
echo "holder: ready"
exec sleep infinity
`;

export interface CloudCfgOptions {
  mode: LabMode;
}

/** The datasource part of the lab's cloud.cfg, per cloud. */
function datasourceCfg(cloud: Cloud): string {
  if (cloud === 'openstack') {
    return `datasource_list: [OpenStack]
datasource:
  OpenStack:
    metadata_urls: ['http://${IMDS_ADDR}']
    timeout: 2
    max_wait: 10
    retries: 1`;
  }
  if (cloud === 'configdrive') return 'datasource_list: [ConfigDrive]';
  return `datasource_list: [Ec2]
datasource:
  Ec2:
    strict_id: false
    metadata_urls: ['http://${IMDS_ADDR}']
    timeout: 2
    max_wait: 10`;
}

/** /etc/cloud/cloud.cfg.d file the lab adds (in the overlay). */
export function cloudCfg(cloud: Cloud = 'ec2', stack: LabStack = 'ifupdown'): string {
  return `# cloud-hotplug lab: ${cloud === 'ec2' ? 'Ec2' : cloud === 'openstack' ? 'OpenStack' : 'ConfigDrive'} datasource only, fast metadata timeouts, no modules, the ${stack} stack's renderer
${datasourceCfg(cloud)}
cloud_init_modules: []
cloud_config_modules: []
cloud_final_modules: []
system_info:
  network:
${networkSystemInfo(stack)}`;
}

export const ETC_NETWORK_INTERFACES = `# interfaces(5) file used by ifup(8) and ifdown(8) (cloud-hotplug lab)
# Include files from /etc/network/interfaces.d:
source /etc/network/interfaces.d/*
`;

export function defaultUserData(hotplug: boolean): string {
  return hotplug ? '#cloud-config\nupdates:\n  network:\n    when: [boot, hotplug]\n' : '#cloud-config\n{}\n';
}

/** Udev rules of the host that would act on NICs by themselves; masked in the instance. */
export const MASKED_UDEV_RULES = ['80-ifupdown.rules'];

/** The instance's systemd-detect-virt on a Nova guest: a VM (cloud-init reads DMI only outside containers). */
export const DETECT_VIRT = [
  '#!/bin/sh',
  '# cloud-hotplug lab: this instance is a Nova guest (a KVM VM), not a container',
  'c=; q=',
  'for a in "$@"; do case "$a" in -c|--container) c=1;; -q|--quiet) q=1;; esac; done',
  'if [ -n "$c" ]; then [ -n "$q" ] || echo none; exit 1; fi',
  '[ -n "$q" ] || echo kvm',
  'exit 0',
  '',
].join('\n');

/** Create overlay upper/work dirs and pre-seed the instance's config in the upper dirs. */
export async function prepareOverlay(p: LabPaths, cloud: Cloud = 'ec2', stack: LabStack = 'ifupdown'): Promise<void> {
  for (const d of ['etc', 'var']) {
    await mkdir(join(p.overlay, d, 'upper'), { recursive: true, mode: 0o755 });
    await mkdir(join(p.overlay, d, 'work'), { recursive: true, mode: 0o755 });
  }
  const up = join(p.overlay, 'etc', 'upper');
  await writeFileAtomic(join(up, 'cloud/cloud.cfg.d/99-cloud-hotplug-lab.cfg'), cloudCfg(cloud, stack));
  await writeFile(join(p.overlay, 'detect-virt'), DETECT_VIRT, { mode: 0o755 });
  await writeFileAtomic(join(up, 'network/interfaces'), ETC_NETWORK_INTERFACES);
  await writeFileAtomic(join(up, 'resolv.conf'), `nameserver ${subnetInfo(PRIMARY_SUBNET).gateway}\n`);
  for (const r of MASKED_UDEV_RULES) {
    await writeFileAtomic(join(up, 'udev/rules.d', r), `# masked by the cloud-hotplug lab: no ifup from udev\n`);
  }
  await writeFileAtomic(join(up, 'hostname'), 'localhost\n');
}

export function hypervisorUuid(): string {
  const h = randomBytes(16).toString('hex');
  return `ec2${h.slice(3, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export interface Holder extends ProcRef {
  mntIno: number;
}

/** Start the holder and wait until its namespaces are fully set up. */
/** The checkout this lab code runs from (dist/scripts/lab/ → three levels up). */
const PROJECT_DIR = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');

export async function startHolder(p: LabPaths, mode: LabMode, onSpawn: (r: ProcRef) => Promise<void>, cloud: Cloud = 'ec2', uuid?: string): Promise<Holder> {
  await writeFile(p.holderScript, HOLDER_SCRIPT, { mode: 0o755 });
  const ref = spawnDaemon(
    [
      'nsenter',
      `--net=${netnsPath(p.netnsInst)}`,
      '--',
      'unshare',
      '--mount',
      '--uts',
      '--propagation',
      'private',
      '--',
      '/bin/sh',
      p.holderScript,
      p.overlay,
      mode,
      uuid ?? hypervisorUuid(),
      'localhost',
      PROJECT_DIR,
      cloud,
    ],
    'holder',
    { log: p.holderLog, env: { PATH: INSTANCE_PATH } },
  );
  await onSpawn(ref);
  const myMnt = nsInode('self', 'mnt');
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    if (!isAlive(ref)) break;
    if (procComm(ref.pid) === 'sleep') {
      const mnt = nsInode(ref.pid, 'mnt');
      if (mnt && mnt !== myMnt) return { ...ref, mntIno: mnt };
    }
    await sleep(10);
  }
  const log = await readFile(p.holderLog, 'utf8').catch(() => '');
  throw new Error(`instance holder failed to start: ${log.trim().split('\n').slice(-4).join(' | ') || 'no output'}`);
}

/** argv that runs `argv` inside the instance (its net, mount and UTS namespaces). */
export function nsenterArgv(holderPid: number, argv: string[], cwd = '/'): string[] {
  return ['nsenter', '-t', String(holderPid), '--net', '--mount', '--uts', `--wd=${cwd}`, '--', ...argv];
}

/** Where the instance's filesystem is visible from the host (through the holder's mount ns). */
export const instanceRoot = (holderPid: number) => `/proc/${holderPid}/root`;

export function instanceRun(holderPid: number, argv: string[], opts: RunOptions & { cwd?: string } = {}): Promise<RunResult> {
  return run(nsenterArgv(holderPid, argv, opts.cwd), opts);
}

/** Clean environment for the lab's own instance commands (boot stages, udev tools). */
export const INSTANCE_ENV = { PATH: INSTANCE_PATH, LANG: 'C.UTF-8', HOME: '/root' };

export interface Stage {
  name: string;
  argv: string[];
}

/** The stage that starts D-Bus and NetworkManager (nm.ts) rather than running a command. */
export const NM_STAGE = 'NetworkManager';
/** The stage that starts D-Bus and systemd-networkd (networkd.ts). */
export const NETWORKD_STAGE = 'systemd-networkd';

export const BOOT_STAGES: Stage[] = [
  { name: 'init-local', argv: ['cloud-init', 'init', '--local'] },
  { name: 'ifup', argv: ['ifup', '-a'] },
  { name: 'init', argv: ['cloud-init', 'init'] },
  { name: 'config', argv: ['cloud-init', 'modules', '--mode', 'config'] },
  { name: 'final', argv: ['cloud-init', 'modules', '--mode', 'final'] },
];

/**
 * The boot of a lab with `stack`: ifupdown's `ifup -a` (networking.service) after the local stage,
 * or NetworkManager started there (NetworkManager.service runs after cloud-init-local).
 */
export function bootStages(stack: LabStack = 'ifupdown'): Stage[] {
  const daemon = stack === 'nm' ? NM_STAGE : stack === 'networkd' ? NETWORKD_STAGE : null;
  return daemon ? BOOT_STAGES.map((s) => (s.name === 'ifup' ? { name: daemon, argv: [] } : s)) : BOOT_STAGES;
}

/** Run one boot stage inside the instance, output appended to boot.log. */
export async function runStage(p: LabPaths, holderPid: number, st: Stage): Promise<StageTiming> {
  const t0 = performance.now();
  await appendFile(p.bootLog, `===== ${new Date().toISOString()} ${st.name}: ${st.argv.join(' ')}\n`);
  const r = await instanceRun(holderPid, st.argv, { check: false, timeoutMs: 240_000, env: INSTANCE_ENV, cleanEnv: true });
  const ms = Math.round(performance.now() - t0);
  await appendFile(p.bootLog, `${r.stdout}${r.stderr}\n===== ${st.name} exit=${r.exitCode} ${ms}ms\n`);
  return { name: st.name, ms, exitCode: r.exitCode };
}

export interface CloudInitStatus {
  status: string;
  detail?: string;
  errors: string[];
  raw?: unknown;
}

export async function cloudInitStatus(holderPid: number): Promise<CloudInitStatus> {
  const r = await instanceRun(holderPid, ['cloud-init', 'status', '--format', 'json'], {
    check: false,
    env: INSTANCE_ENV,
    cleanEnv: true,
    timeoutMs: 60_000,
  });
  try {
    const j = JSON.parse(r.stdout) as { status?: string; detail?: string; errors?: string[] };
    return { status: j.status ?? 'unknown', detail: j.detail, errors: j.errors ?? [], raw: j };
  } catch {
    return { status: 'unknown', errors: [(r.stderr || r.stdout).trim()] };
  }
}

/**
 * Read a file of the instance. Through nsenter, not /proc/<holder>/root: absolute symlinks in
 * the instance (e.g. /var/lib/cloud/instance) would resolve against the host's root there.
 */
export async function readInstanceFile(holderPid: number, path: string): Promise<string> {
  const r = await instanceRun(holderPid, ['cat', '--', path], { check: false, env: INSTANCE_ENV, cleanEnv: true });
  if (r.exitCode !== 0) {
    const e = new Error(`cannot read ${path} in the instance: ${r.stderr.trim()}`) as NodeJS.ErrnoException;
    e.code = /No such file/.test(r.stderr) ? 'ENOENT' : 'EIO';
    throw e;
  }
  return r.stdout;
}

const WRITE_SH = 'umask 022; mkdir -p "$(dirname "$1")" && t="$1.lab-tmp.$$" && cat > "$t" && chmod "$2" "$t" && mv -f "$t" "$1"';

/** Write a file in the instance (temp file + rename, inside the instance's mount namespace). */
export async function writeInstanceFile(holderPid: number, path: string, data: string, mode = 0o644): Promise<void> {
  await instanceRun(holderPid, ['sh', '-c', WRITE_SH, 'sh', path, mode.toString(8)], { input: data, env: INSTANCE_ENV, cleanEnv: true });
}

export function holderAlive(h: ProcRef | undefined): boolean {
  return isAlive(h);
}
