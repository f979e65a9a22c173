/**
 * What `hotplug install` puts on a host, and the manifest that lets `uninstall`
 * remove exactly that (and restore anything it moved aside).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMON_NICE, DAEMON_NODE_FLAGS } from '../daemon/supervise.js';

const distSrc = dirname(dirname(fileURLToPath(import.meta.url)));
export const CLI_JS = join(distSrc, 'cli.js');
/** The udev program: POSIX sh, so udev's worker is released in milliseconds (see the script). */
export const UDEV_HOOK = join(distSrc, '../../bin/hotplug-udev-hook');

export const RULE_PATH = 'etc/udev/rules.d/90-cloud-hotplug.rules';
export const REPLAY_UNIT = 'etc/systemd/system/cloud-hotplug-replay.service';
export const DAEMON_UNIT = 'etc/systemd/system/cloud-hotplug-daemon.service';
export const DAEMON_SERVICE = 'cloud-hotplug-daemon.service';
export const MANIFEST = 'var/lib/cloud-hotplug/install-manifest.json';
export const NETWORKD_DROPIN = 'etc/systemd/networkd.conf.d/80-cloud-hotplug.conf';

/**
 * systemd-networkd removes routing-policy rules and routes it did not configure ("foreign")
 * whenever it starts (a `netplan apply`, a package upgrade) and when it configures a link:
 * checked in the VM, our rules and table routes were gone after `systemctl restart
 * systemd-networkd`. It offers no per-protocol exception (systemd 252), so on hosts with
 * networkd we ask it to leave foreign rules and routes alone. It reads this at its next start,
 * which is exactly when it would otherwise flush them.
 */
export const NETWORKD_DROPIN_TEXT = `# Installed by "hotplug install" (cloud-hotplug); removed by "hotplug uninstall".
# Keep the policy-routing rules and per-NIC table routes cloud-hotplug adds (protocol 199).
[Network]
ManageForeignRoutingPolicyRules=no
ManageForeignRoutes=no
`;

export const NM_DROPIN = 'etc/NetworkManager/conf.d/80-cloud-hotplug.conf';

/**
 * NetworkManager gives every new NIC without a profile its own automatic "Wired connection N" and
 * starts DHCP on it at once, before cloud-init has rendered the NIC's profile: seen in the lab
 * (two DHCP exchanges per hot-added NIC, an extra profile left beside cloud-init's). With
 * cloud-hotplug, cloud-init configures every NIC, so NM is asked to create none of its own.
 */
export const NM_DROPIN_TEXT = `# Installed by "hotplug install" (cloud-hotplug); removed by "hotplug uninstall".
# cloud-init renders a profile for every NIC (at boot and on hotplug): no automatic "Wired connection".
[main]
no-auto-default=*
`;

/** cloud-init's own hotplug hook: the 22.4 rule name and the 24.1+ one, and its FIFO socket unit. */
export const CLOUD_INIT_RULES = ['etc/udev/rules.d/10-cloud-init-hook-hotplug.rules', 'etc/udev/rules.d/90-cloud-init-hook-hotplug.rules'];
export const CLOUD_INIT_SOCKET = 'cloud-init-hotplugd.socket';

export function ruleText(node: string): string {
  // 90-: after 80-net-setup-link.rules, so renaming and ID_NET_DRIVER are settled.
  return `# Installed by "hotplug install" (cloud-hotplug); removed by "hotplug uninstall".
# Queues net add/remove events for cloud-hotplug's worker; returns in milliseconds.
SUBSYSTEM!="net", GOTO="cloud_hotplug_end"
ACTION!="add|remove", GOTO="cloud_hotplug_end"
KERNEL=="lo", GOTO="cloud_hotplug_end"
RUN+="/bin/sh ${UDEV_HOOK} ${node} ${CLI_JS}"
LABEL="cloud_hotplug_end"
`;
}

export function replayUnitText(node: string): string {
  return `# Installed by "hotplug install" (cloud-hotplug).
[Unit]
Description=cloud-hotplug: handle network hotplug events queued during boot
After=cloud-final.service
Wants=cloud-final.service

[Service]
Type=oneshot
# Active once boot's events are handled: \`systemctl is-active\` answers "has the replay run?".
RemainAfterExit=yes
ExecStart=${node} ${CLI_JS} worker --wait --boot

[Install]
WantedBy=cloud-init.target
`;
}

/**
 * The daemon under systemd: Type=notify (it runs `systemd-notify --ready` once its socket, bridge
 * and watchers are up, hence NotifyAccess=all), Restart=on-failure, SIGHUP reloads the config.
 * KillMode=process: the DHCP clients ifup starts belong to the interfaces, not to the daemon, and
 * must survive its restarts. Hardening keeps what network configuration needs: CAP_NET_ADMIN and
 * CAP_NET_RAW (ip, dhclient), AF_PACKET and AF_NETLINK, a writable /etc (cloud-init renders
 * /etc/network/interfaces.d, dhclient-script writes resolv.conf); no MemoryDenyWriteExecute
 * (node's JIT needs it off). Nice= and CPUWeight= (below udevd's default 100) let udev's short
 * RUN programs go first in a storm: nice within a cgroup, the weight between cgroups.
 */
export function daemonUnitText(node: string): string {
  return `# Installed by "hotplug install" (cloud-hotplug); removed by "hotplug uninstall".
[Unit]
Description=cloud-hotplug daemon: hotplug events, kernel link watch, metadata polling
After=cloud-init-local.service
Wants=cloud-init-local.service

[Service]
Type=notify
NotifyAccess=all
ExecStart=${node} ${DAEMON_NODE_FLAGS.join(' ')} ${CLI_JS} daemon
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=1s
Nice=${DAEMON_NICE}
CPUWeight=20
TimeoutStopSec=120s
KillMode=process
Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
NoNewPrivileges=yes
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_CHOWN CAP_KILL CAP_SETUID CAP_SETGID
ProtectSystem=true
ProtectHome=yes
PrivateTmp=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6 AF_PACKET

[Install]
WantedBy=multi-user.target
`;
}

export interface Manifest {
  version: 1;
  installed_at: string;
  /** Files we wrote (relative to root). */
  files: string[];
  /** Files we renamed: [original, renamed-to]. */
  moved: [string, string][];
  /** systemd units we masked with a /dev/null link (relative link paths). */
  masked: string[];
  /** Directories we created for those files (removed on uninstall when empty). */
  dirs?: string[];
  /** The daemon enabled (default) or not (install --no-daemon); absent in installs before the default. */
  daemon?: boolean;
  /** Installed with --replace-cloud-init-hook: the boot replay keeps cloud-init's rule aside. */
  replace_cloud_init_hook?: boolean;
}

export const rel = (root: string, p: string) => resolve(root, p);
