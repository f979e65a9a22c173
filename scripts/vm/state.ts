/**
 * A VM's recorded state (state.json in its directory): its NICs, processes and boot timings, and
 * how the other vm modules load and save it.
 */
import { readFile } from 'node:fs/promises';
import { writeJsonAtomic } from '../../src/util/atomic.js';
import { UserError } from '../../src/util/errors.js';
import { vmPaths, type Flavour, type VmCloud, type VmPaths } from './paths.js';
import type { ProcRef } from './proc.js';

export interface Nic {
  /** 0 = boot NIC. */
  index: number;
  id: string;
  netdev: string;
  tap: string;
  mac: string;
  subnet: number;
  ip: string;
  /** Secondary private IPs metadata assigns (static, not DHCP: the OS must add them). */
  secondary?: string[];
  deviceNumber: number;
  slot: number;
  /** The guest's name for it, by PCI slot (ensN); confirmed by `attach --wait`. */
  ifname: string;
  inMetadata: boolean;
  attachedAt: number;
}

export interface VmState {
  version: 1;
  name: string;
  flavour: Flavour;
  /** Absent in state written before clouds: ec2. */
  cloud?: VmCloud;
  image: string;
  accel: string;
  netns: string;
  smbiosUuid: string;
  startedAt: number;
  procs: { qemu?: ProcRef; dnsmasq?: ProcRef; imds?: ProcRef };
  nics: Nic[];
  hostCounter: Record<string, number>;
  /** ms from QEMU start to the console's "Cloud-init … finished" line. */
  bootMs?: number;
  /** ms from QEMU start until the guest agent answered. */
  agentMs?: number;
}

export type Say = (msg: string) => void;
export const quiet: Say = () => {};

export async function loadState(p: VmPaths): Promise<VmState | null> {
  try {
    return JSON.parse(await readFile(p.state, 'utf8')) as VmState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export const saveState = (p: VmPaths, s: VmState) => writeJsonAtomic(p.state, s);

export async function requireState(name?: string): Promise<[VmPaths, VmState]> {
  const p = vmPaths(name);
  const s = await loadState(p);
  if (!s) throw new UserError(`vm ${p.name} is not up (no ${p.state})`);
  return [p, s];
}
