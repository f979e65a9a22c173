/**
 * Everything the routing code touches on the host, injectable (tests use a fake `ip` and a temp
 * state file; the netns suite a namespace), with the defaults filled in in one place.
 */
import { join } from 'node:path';
import { readActual, type ActualState } from './actual.js';
import { type IpRunner, type FileReader, systemIp, systemReadFile } from './run.js';
import { type OwnedState, readState, defaultStatePath } from './state.js';

export interface RoutingEnv {
  /** Runs `ip` (default: the host's; systemIp({netns}) for a namespace). */
  ip?: IpRunner;
  /** Reads the state file (default: the host's file system). */
  readFile?: FileReader;
  /** Default /run/cloud-hotplug/routing-state.json. */
  statePath?: string;
  /** Where dhclient keeps dhclient.<if>.leases (default /var/lib/dhcp under HOTPLUG_ROOT). */
  leaseDir?: string;
  now?: () => Date;
}

export const defaultLeaseDir = (): string => join(process.env.HOTPLUG_ROOT ?? '/', 'var/lib/dhcp');

export interface ResolvedEnv {
  ip: IpRunner;
  readFile: FileReader;
  statePath: string;
  leaseDir: string;
  now: () => Date;
}

export function resolveEnv(env: RoutingEnv = {}): ResolvedEnv {
  return {
    ip: env.ip ?? systemIp(),
    readFile: env.readFile ?? systemReadFile,
    statePath: env.statePath ?? defaultStatePath(),
    leaseDir: env.leaseDir ?? defaultLeaseDir(),
    now: env.now ?? (() => new Date()),
  };
}

/** The system's rules, routes, addresses and links, and what the state file says is ours, read together. */
export async function readCurrent(env: ResolvedEnv): Promise<{ actual: ActualState; owned: OwnedState }> {
  const [actual, owned] = await Promise.all([readActual(env.ip), readState(env.statePath, env.readFile)]);
  return { actual, owned };
}
