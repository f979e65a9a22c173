/**
 * Names and paths of one lab. Everything a lab creates is derived from its name here,
 * so `down` can find leftovers even when state.json never got written.
 */
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { UserError } from '../../src/util/errors.js';

/** Root of all labs' state on the host. */
export const LAB_ROOT = process.env.CHL_LAB_ROOT ?? '/run/cloud-hotplug-lab';
/** Prefix of every network namespace a lab creates. */
export const NETNS_PREFIX = 'chl-';
export const DEFAULT_NAME = 'lab';

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,23}$/;

export function checkName(name: string | undefined): string {
  const n = name ?? DEFAULT_NAME;
  if (!NAME_RE.test(n)) {
    throw new UserError(`invalid lab name ${JSON.stringify(n)}: use 1-24 of [a-z0-9-], starting with a letter or digit`);
  }
  return n;
}

export interface LabPaths {
  name: string;
  dir: string;
  lock: string;
  state: string;
  model: string;
  imdsSock: string;
  imdsLog: string;
  dhcpHosts: string;
  dhcpLeases: string;
  dnsmasqLog: string;
  dnsmasqPid: string;
  holderScript: string;
  holderLog: string;
  udevdLog: string;
  udevMonitorLog: string;
  bootLog: string;
  overlay: string;
  netnsCloud: string;
  netnsInst: string;
  /** The "client" host outside the VPC (routed by the cloud netns). */
  netnsClient: string;
}

export function labPaths(name: string | undefined): LabPaths {
  const n = checkName(name);
  const dir = join(LAB_ROOT, n);
  return {
    name: n,
    dir,
    lock: join(LAB_ROOT, `${n}.lock`),
    state: join(dir, 'state.json'),
    model: join(dir, 'metadata.json'),
    imdsSock: join(dir, 'imds.sock'),
    imdsLog: join(dir, 'imds.log'),
    dhcpHosts: join(dir, 'dhcp-hosts'),
    dhcpLeases: join(dir, 'dnsmasq.leases'),
    dnsmasqLog: join(dir, 'dnsmasq.log'),
    dnsmasqPid: join(dir, 'dnsmasq.pid'),
    holderScript: join(dir, 'holder-setup.sh'),
    holderLog: join(dir, 'holder.log'),
    udevdLog: join(dir, 'udevd.log'),
    udevMonitorLog: join(dir, 'udev-monitor.log'),
    bootLog: join(dir, 'boot.log'),
    overlay: join(dir, 'overlay'),
    netnsCloud: `${NETNS_PREFIX}${n}-cloud`,
    netnsInst: `${NETNS_PREFIX}${n}-inst`,
    netnsClient: `${NETNS_PREFIX}${n}-client`,
  };
}

/** Stable short hex digest of a lab name (MAC prefixes, ids). */
export function nameHash(name: string, len = 4): string {
  return createHash('sha256').update(name).digest('hex').slice(0, len);
}

/** The lab's subnets: index k → 10.0.k.0/24 with gateway .1, one bridge `brK` in the cloud netns. */
export const SUBNET_COUNT = 4;
export const PRIMARY_SUBNET = 1;
export const DEFAULT_SECONDARY_SUBNET = 2;
export const VPC_CIDR = '10.0.0.0/16';
export const IMDS_ADDR = '169.254.169.254';
/** First and last host number handed out in a subnet (.10 … .250). */
export const HOST_MIN = 10;
export const HOST_MAX = 250;

/**
 * The client network: a host outside the instance's subnets that reaches them through the cloud
 * netns's router (the way a peer on the internet or in another VPC would).
 */
export const CLIENT_CIDR = '10.0.9.0/24';
export const CLIENT_ADDR = '10.0.9.10';
export const CLIENT_GATEWAY = '10.0.9.1';
/** The client link's end in the cloud netns (its end in the client netns is eth0). */
export const CLIENT_LINK = 'client0';
/** The client's IPv6 network (labs always route it; instances get IPv6 only with `up --ipv6`). */
export const CLIENT_CIDR6 = 'fd00:10:0:9::/64';
export const CLIENT_ADDR6 = 'fd00:10:0:9::10';
export const CLIENT_GATEWAY6 = 'fd00:10:0:9::1';
/** The VPC's IPv6 block (ULA: lab traffic never leaves the lab's namespaces); subnet k is fd00:10:0:k::/64. */
export const VPC_IPV6_CIDR = 'fd00:10::/56';

export interface SubnetInfo {
  index: number;
  cidr: string;
  prefix: string; // "10.0.k."
  gateway: string;
  bridge: string;
  mask: string;
  /** The subnet's IPv6 /64, the cloud router's address in it, and the prefix hosts are numbered from ("fd00:10:0:k::"). */
  cidr6: string;
  gateway6: string;
  prefix6: string;
}

export function subnetInfo(k: number): SubnetInfo {
  if (!Number.isInteger(k) || k < 1 || k > SUBNET_COUNT) {
    throw new UserError(`no subnet ${k}: subnets are 1..${SUBNET_COUNT}`);
  }
  return {
    index: k,
    cidr: `10.0.${k}.0/24`,
    prefix: `10.0.${k}.`,
    gateway: `10.0.${k}.1`,
    bridge: `br${k}`,
    mask: '255.255.255.0',
    cidr6: `fd00:10:0:${k}::/64`,
    gateway6: `fd00:10:0:${k}::1`,
    prefix6: `fd00:10:0:${k}::`,
  };
}

export function allSubnets(): SubnetInfo[] {
  return Array.from({ length: SUBNET_COUNT }, (_, i) => subnetInfo(i + 1));
}

/** Standard PATH for commands the lab runs inside the instance (never the caller's python3 first). */
export const INSTANCE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
