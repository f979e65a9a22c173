/** state.json of one lab: what exists, by PID and name, written before and after each step of `up`. */
import { readFile } from 'node:fs/promises';
import { writeJsonAtomic } from '../../src/util/atomic.js';
import type { ProcRef } from './proc.js';
import type { Cloud } from './metadata.js';

export type LabMode = 'faithful' | 'generic';
export type Phase = 'creating' | 'booting' | 'paused-before-config' | 'paused-before-final' | 'up' | 'failed';

export interface Attachment {
  ifname: string;
  mac: string;
  deviceNumber: number;
  subnet: number;
  ips: string[];
  /** IPv6 addresses (first: the DHCPv6 one); absent for an IPv4-only NIC. */
  ipv6s?: string[];
  /** Cloud-side veth end (in the cloud netns, port of the subnet's bridge). */
  vif: string;
  inMetadata: boolean;
  attachedAt: number;
}

export interface StageTiming {
  name: string;
  ms: number;
  exitCode: number;
}

export interface LabState {
  version: 1;
  name: string;
  mode: LabMode;
  /** Absent: ec2 (labs from before clouds). */
  cloud?: Cloud;
  phase: Phase;
  createdAt: string;
  updatedAt: string;
  options: { hotplugUserdata: boolean; udev: boolean; userdataFile?: string; pauseBefore?: 'config' | 'final'; stack?: 'ifupdown' | 'nm' | 'networkd'; ipv6?: boolean };
  netns: { cloud: string; inst: string; cloudIno?: number; instIno?: number; client?: string; clientIno?: number };
  holder?: ProcRef & { mntIno?: number };
  procs: { dnsmasq?: ProcRef; imds?: ProcRef; udevd?: ProcRef; udevMonitor?: ProcRef; dbus?: ProcRef; networkManager?: ProcRef; networkd?: ProcRef };
  counters: { mac: number; vif: number; nextHost?: Record<string, number>; nextHost6?: Record<string, number> };
  attachments: Attachment[];
  stages: StageTiming[];
  upMs?: number;
  error?: string;
}

export async function loadState(path: string): Promise<LabState | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LabState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export async function saveState(path: string, s: LabState): Promise<void> {
  s.updatedAt = new Date().toISOString();
  await writeJsonAtomic(path, s);
}
