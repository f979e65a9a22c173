/**
 * What `hotplug install` puts on a host, and the manifest that lets `uninstall`
 * remove exactly that (and restore anything it moved aside).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const distSrc = dirname(dirname(fileURLToPath(import.meta.url)));
export const HOOK_JS = join(distSrc, 'hook.js');
export const CLI_JS = join(distSrc, 'cli.js');

export const RULE_PATH = 'etc/udev/rules.d/90-cloud-hotplug.rules';
export const REPLAY_UNIT = 'etc/systemd/system/cloud-hotplug-replay.service';
export const MANIFEST = 'var/lib/cloud-hotplug/install-manifest.json';

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
RUN+="${node} ${HOOK_JS}"
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
ExecStart=${node} ${CLI_JS} worker --wait

[Install]
WantedBy=cloud-init.target
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
}

export const rel = (root: string, p: string) => resolve(root, p);
