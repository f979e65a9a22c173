/**
 * Everything the routing code touches on the host, injectable (tests use a fake `ip` and a temp
 * state file; the netns suite a namespace), with the defaults filled in in one place.
 */
import { readActual, type ActualState, type LeaseGateway } from './actual.js';
import { type IpRunner, type FileReader, systemIp, systemReadFile } from './run.js';
import { type OwnedState, readState, defaultStatePath } from './state.js';

export interface RoutingEnv {
  /** Runs `ip` (default: the host's; systemIp({netns}) for a namespace). */
  ip?: IpRunner;
  /** Reads the state file (default: the host's file system). */
  readFile?: FileReader;
  /** Default /run/cloud-hotplug/routing-state.json. */
  statePath?: string;
  /**
   * The IPv4 router of an interface's DHCP lease, from the host's network stack (its DHCP client
   * knows; routing does not). Absent: no lease is consulted, and a main-table default route
   * through the interface is the only gateway source besides the subnet's first host.
   */
  leaseGateway?: LeaseGateway;
  now?: () => Date;
}

export interface ResolvedEnv {
  ip: IpRunner;
  readFile: FileReader;
  statePath: string;
  leaseGateway?: LeaseGateway;
  now: () => Date;
}

export function resolveEnv(env: RoutingEnv = {}): ResolvedEnv {
  return {
    ip: env.ip ?? systemIp(),
    readFile: env.readFile ?? systemReadFile,
    statePath: env.statePath ?? defaultStatePath(),
    leaseGateway: env.leaseGateway,
    now: env.now ?? (() => new Date()),
  };
}

/** The system's rules, routes, addresses and links, and what the state file says is ours, read together. */
export async function readCurrent(env: ResolvedEnv): Promise<{ actual: ActualState; owned: OwnedState }> {
  const [actual, owned] = await Promise.all([readActual(env.ip), readState(env.statePath, env.readFile)]);
  return { actual, owned };
}
