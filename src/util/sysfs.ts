/**
 * The one reader of /sys/class/net (under HOTPLUG_ROOT for tests): which links exist, their MACs,
 * device paths and drivers. Everything else asks here instead of building sysfs paths itself.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { IFNAME_RE } from '../events/event.js';

const netDir = (): string => join(process.env.HOTPLUG_ROOT ?? '/', 'sys/class/net');

/** Whether the link exists now. */
export function linkExists(ifname: string): boolean {
  return IFNAME_RE.test(ifname) && ifname !== '.' && ifname !== '..' && existsSync(join(netDir(), ifname));
}

/** The kernel device path (/devices/…) of a link; a virtual one when it is gone. */
export async function devpathOf(ifname: string): Promise<string> {
  try {
    const p = await realpath(join(netDir(), ifname));
    const i = p.indexOf('/devices/');
    if (i >= 0) return p.slice(i);
  } catch {
    /* gone already */
  }
  return `/devices/virtual/net/${ifname}`;
}

/** The driver bound to the link's device, if it has one. */
export async function driverOf(ifname: string): Promise<string | undefined> {
  try {
    return basename(await realpath(join(netDir(), ifname, 'device/driver')));
  } catch {
    return undefined;
  }
}

/** MAC → ifname of the links present now (the first name wins for a shared MAC). */
export async function presentLinks(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const n of await readdir(netDir()).catch(() => [] as string[])) {
    if (!IFNAME_RE.test(n)) continue;
    const mac = (await readFile(join(netDir(), n, 'address'), 'utf8').catch(() => '')).trim().toLowerCase();
    if (mac && !out.has(mac)) out.set(mac, n);
  }
  return out;
}
