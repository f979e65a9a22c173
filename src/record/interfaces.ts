/**
 * Interfaces we configured, so a `remove` (whose sysfs node is already gone) still knows the MAC
 * of the device behind the name. Lives on /run: after a reboot a full reconcile rebuilds it.
 * Written only by the worker while it holds the apply lock, so read-modify-write is safe.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { paths } from '../paths.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { log } from '../util/log.js';
import { IFNAME_RE, MAC_RE } from '../events/event.js';

export interface KnownInterface {
  mac: string;
  /** ms since the epoch. */
  addedAt: number;
  /** Cloud device index (e.g. AWS DeviceNumber), when the datasource gives one. */
  deviceNumber?: number;
}

export type KnownInterfaces = Record<string, KnownInterface>;

export const knownFile = (): string => join(paths.runDir, 'known-interfaces.json');

function valid(ifname: string, v: unknown): v is KnownInterface {
  if (!IFNAME_RE.test(ifname) || ifname === '.' || ifname === '..') return false;
  if (typeof v !== 'object' || v === null) return false;
  const k = v as Record<string, unknown>;
  return (
    typeof k.mac === 'string' && MAC_RE.test(k.mac) &&
    typeof k.addedAt === 'number' && Number.isFinite(k.addedAt) &&
    (k.deviceNumber === undefined || (Number.isSafeInteger(k.deviceNumber) && (k.deviceNumber as number) >= 0))
  );
}

/** Missing file = empty. A corrupt file or entry is dropped with a warning (the next apply rewrites it). */
export async function loadKnown(file: string = knownFile()): Promise<KnownInterfaces> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log('warn', 'ignoring unreadable known-interfaces file', { file, error: String(e) });
    return {};
  }
  const out: KnownInterfaces = Object.create(null);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return out;
  for (const [ifname, v] of Object.entries(raw)) {
    if (valid(ifname, v)) {
      out[ifname] = { mac: v.mac, addedAt: v.addedAt, ...(v.deviceNumber !== undefined ? { deviceNumber: v.deviceNumber } : {}) };
    } else {
      log('warn', 'dropping invalid known-interfaces entry', { file, iface: ifname.slice(0, 15) });
    }
  }
  return out;
}

export async function saveKnown(known: KnownInterfaces, file: string = knownFile()): Promise<void> {
  const sorted = Object.fromEntries(Object.entries(known).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  await writeJsonAtomic(file, sorted, 0o644);
}

export async function rememberInterface(ifname: string, info: KnownInterface, file: string = knownFile()): Promise<KnownInterfaces> {
  if (!valid(ifname, info)) throw new Error(`refusing to record invalid interface ${JSON.stringify(ifname)}`);
  const known = await loadKnown(file);
  known[ifname] = info;
  await saveKnown(known, file);
  return known;
}

export async function forgetInterface(ifname: string, file: string = knownFile()): Promise<KnownInterfaces> {
  const known = await loadKnown(file);
  if (Object.hasOwn(known, ifname)) {
    delete known[ifname];
    await saveKnown(known, file);
  }
  return known;
}

/** ifname currently recorded for a MAC (names can move between devices). */
export function ifnameForMac(known: KnownInterfaces, mac: string): string | undefined {
  const m = mac.toLowerCase();
  return Object.keys(known).find((k) => known[k]!.mac === m);
}
