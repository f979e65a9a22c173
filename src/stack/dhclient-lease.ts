/**
 * The IPv4 router of an interface's current lease as ISC dhclient records it (ifupdown's DHCP
 * client on Debian): for the ifupdown NetworkStack's leaseGateway, which policy routing asks for
 * a secondary NIC's default route.
 */
import { join } from 'node:path';
import { parseIp } from '../routing/addr.js';
import { type FileReader, systemReadFile } from '../routing/run.js';

/** Where ifupdown's dhclient keeps dhclient.<if>.leases (/var/lib/dhcp under HOTPLUG_ROOT). */
export const defaultLeaseDir = (): string => join(process.env.HOTPLUG_ROOT ?? '/', 'var/lib/dhcp');

/** Router of the last lease in a dhclient leases file (`option routers A[, B];`). */
export function leaseRouter(text: string | null): string | undefined {
  if (!text) return undefined;
  const all = [...text.matchAll(/^\s*option\s+routers\s+([^;]+);/gm)];
  const last = all.at(-1)?.[1];
  if (!last) return undefined;
  return parseIp(last.split(',')[0]!.trim(), 4)?.text;
}

/** A name that can be a Linux interface and is safe inside a file name (it becomes part of a path). */
export const leaseIfnameOk = (ifname: string): boolean => /^[A-Za-z0-9_.:@-]{1,15}$/.test(ifname) && ifname !== '.' && ifname !== '..';

/**
 * The router of `ifname`'s dhclient lease, or undefined: no lease file, no router in it, an
 * unreadable file, or a name unfit for a path. Never throws: a missing lease only means the
 * caller falls back to another source.
 */
export async function dhclientLeaseGateway(ifname: string, opts: { leaseDir?: string; readFile?: FileReader } = {}): Promise<string | undefined> {
  if (!leaseIfnameOk(ifname)) return undefined;
  let lease: string | null = null;
  try {
    lease = await (opts.readFile ?? systemReadFile)(`${opts.leaseDir ?? defaultLeaseDir()}/dhclient.${ifname}.leases`);
  } catch {
    lease = null;
  }
  return leaseRouter(lease);
}
