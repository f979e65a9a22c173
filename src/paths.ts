/**
 * Where cloud-hotplug's files live: the directories, and the files more than one module uses. A
 * file only one module uses (recent-events.json, known-interfaces.json, daemon.json, the routing
 * state) is named in that module, under one of these directories; sysfs is read through
 * util/sysfs.ts. The root prefix (HOTPLUG_ROOT) exists for tests and for `install --root`.
 */
import { join } from 'node:path';

const root = process.env.HOTPLUG_ROOT ?? '/';
const r = (p: string) => join(root, p);

export const paths = {
  /** cloud-init's cached datasource (unpickled: must be root-owned, not group/world-writable). */
  objPkl: r('/var/lib/cloud/instance/obj.pkl'),
  cloudInitResult: r('/run/cloud-init/result.json'),
  cloudInitStatus: r('/run/cloud-init/status.json'),
  /** Our runtime state (tmpfs; gone on reboot by design). */
  runDir: r('/run/cloud-hotplug'),
  networkConfigJson: r('/run/cloud-hotplug/network-config.json'),
  lastApplyJson: r('/run/cloud-hotplug/last-apply.json'),
  /** What the last session read from cloud-init's cache, for a cheap `status` (record/instance.ts). */
  instanceRecordJson: r('/run/cloud-hotplug/instance.json'),
  queueDir: r('/run/cloud-hotplug/queue'),
  lockFile: r('/run/cloud-hotplug/apply.lock'),
  /** Persistent state (survives reboot). */
  stateDir: r('/var/lib/cloud-hotplug'),
  disabledFlag: r('/var/lib/cloud-hotplug/disabled'),
  logFile: r('/var/log/cloud-hotplug.log'),
  configFile: r('/etc/cloud-hotplug/config.yaml'),
};

/** The interpreter that has cloud-init; the python3 first on PATH may not. */
export const PYTHON_BIN = process.env.PYTHON_BIN ?? '/usr/bin/python3';

/**
 * udev runs its programs without PATH, and a root network tool should not trust the
 * caller's PATH anyway: cloud-init's activators exec `ifup`, `ip`, `dhclient` by name.
 */
export const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
