/**
 * The one reader of /sys/class/net (under HOTPLUG_ROOT for tests): which links exist, their MACs,
 * device paths and drivers. Everything else asks here instead of building sysfs paths itself.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';

const netDir = (root: string = process.env.HOTPLUG_ROOT ?? '/'): string => join(root, 'sys/class/net');

/** A name that is one path component of /sys/class/net (callers validate names fully; this guards the path). */
const component = (ifname: string): boolean => ifname.length > 0 && ifname !== '.' && ifname !== '..' && !ifname.includes('/') && !ifname.includes('\0');

/** Whether the link exists now (in `root`'s sysfs: tests give a scratch root). */
export function linkExists(ifname: string, root?: string): boolean {
  return component(ifname) && existsSync(join(netDir(root), ifname));
}

/** The link's hardware address as sysfs prints it (lower case), or undefined when it is gone. Sync: the udev hook path uses it. */
export function addressOf(ifname: string, root?: string): string | undefined {
  if (!component(ifname)) return undefined;
  try {
    return readFileSync(join(netDir(root), ifname, 'address'), 'utf8').trim().toLowerCase() || undefined;
  } catch {
    return undefined;
  }
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
    if (!component(n)) continue;
    const mac = (await readFile(join(netDir(), n, 'address'), 'utf8').catch(() => '')).trim().toLowerCase();
    if (mac && !out.has(mac)) out.set(mac, n);
  }
  return out;
}
