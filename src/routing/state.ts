/**
 * What this project added, for the things the kernel cannot mark: addresses have no
 * protocol field (in iproute2 6.1), so each one we add is recorded here. Rules and routes
 * carry protocol ROUTING_PROTO; their NIC's table and rule sources are recorded too, so a
 * hot-unplug can remove exactly that NIC's rules even if its table number was reused.
 * Lives in /run (tmpfs): gone on reboot, like the kernel state it describes.
 */
import { join } from 'node:path';
import { paths } from '../paths.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { type FileReader, systemReadFile } from './run.js';
import { type Family, parseIp, parsePrefix } from './addr.js';
import { log } from '../util/log.js';

/** rtnetlink protocol on every rule and route we add (0xc7; unassigned in rtnetlink.h and rt_protos). */
export const ROUTING_PROTO = 199;
export const STATE_VERSION = 1;

export const defaultStatePath = (): string => join(paths.runDir, 'routing-state.json');

export interface OwnedAddress {
  family: Family;
  address: string;
  prefixlen: number;
}

export interface OwnedNic {
  /** Interface name when last seen (the MAC is the key). */
  ifname: string;
  /** Its route table; 0 for the primary NIC (main table: only addresses are ours). */
  table: number;
  /** Priority of its rules (the same number as its table in our layout; 0 for the primary NIC). */
  priority: number;
  /** Sources of the rules we added, "4 10.0.1.10/32" style ("<family> <cidr>"). */
  rules: string[];
  addresses: OwnedAddress[];
  updated: string;
}

export interface OwnedState {
  version: number;
  protocol: number;
  nics: Record<string, OwnedNic>;
  /** Our `lookup main suppress_prefixlength 0` rules present, "<family> <priority>" (e.g. "4 9999"). */
  mainRules: string[];
}

export const emptyState = (): OwnedState => ({ version: STATE_VERSION, protocol: ROUTING_PROTO, nics: {}, mainRules: [] });

export const ruleKey = (family: Family, from: string): string => `${family} ${from}`;

/** Validates a parsed state file; entries that do not check out are dropped (never trusted as ownership). */
export function validateState(doc: unknown): OwnedState {
  const st = emptyState();
  if (typeof doc !== 'object' || doc === null) return st;
  const main = (doc as { mainRules?: unknown }).mainRules;
  if (Array.isArray(main)) st.mainRules = main.filter((m): m is string => typeof m === 'string' && /^[46] [1-9][0-9]{0,9}$/.test(m));
  const nics = (doc as { nics?: unknown }).nics;
  if (typeof nics !== 'object' || nics === null) return st;
  for (const [mac, v] of Object.entries(nics as Record<string, unknown>)) {
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac) || typeof v !== 'object' || v === null) continue;
    const n = v as Record<string, unknown>;
    if (typeof n.ifname !== 'string' || !/^[A-Za-z0-9_.:@-]{1,15}$/.test(n.ifname)) continue;
    // 0: no table (the primary NIC, of which only addresses are recorded).
    if (typeof n.table !== 'number' || !Number.isSafeInteger(n.table) || n.table < 0 || n.table > 0xffffffff) continue;
    const rules = (Array.isArray(n.rules) ? n.rules : []).filter((r): r is string => {
      if (typeof r !== 'string') return false;
      const m = /^([46]) (\S+)$/.exec(r);
      if (!m) return false;
      const p = parsePrefix(m[2], { family: Number(m[1]) as Family });
      return typeof p !== 'string' && p.text === m[2];
    });
    const addresses: OwnedAddress[] = [];
    for (const a of Array.isArray(n.addresses) ? n.addresses : []) {
      if (typeof a !== 'object' || a === null) continue;
      const { family, address, prefixlen } = a as Record<string, unknown>;
      if (family !== 4 && family !== 6) continue;
      const ip = parseIp(address, family);
      if (!ip || ip.text !== address || typeof prefixlen !== 'number' || !Number.isInteger(prefixlen) || prefixlen < 1 || prefixlen > (family === 4 ? 32 : 128)) continue;
      addresses.push({ family, address: ip.text, prefixlen });
    }
    // Files written before priorities were recorded: the priority was the table number.
    const priority = typeof n.priority === 'number' && Number.isSafeInteger(n.priority) && n.priority >= 0 && n.priority <= 0xffffffff ? n.priority : n.table;
    st.nics[mac] = { ifname: n.ifname, table: n.table, priority, rules, addresses, updated: typeof n.updated === 'string' ? n.updated : '' };
  }
  return st;
}

export async function readState(path = defaultStatePath(), readFile: FileReader = systemReadFile): Promise<OwnedState> {
  const text = await readFile(path);
  if (text === null) return emptyState();
  try {
    return validateState(JSON.parse(text));
  } catch {
    log('warn', 'routing state file is not valid JSON; treating as empty (addresses it listed will not be removed)', { path });
    return emptyState();
  }
}

export async function writeState(st: OwnedState, path = defaultStatePath()): Promise<void> {
  await writeJsonAtomic(path, st, 0o644);
}
