/**
 * The metadata model of one lab instance (a JSON file in the lab dir, read by the IMDS and
 * changed by CLI processes under the lab lock) and its rendering as the EC2 metadata tree.
 */
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { writeJsonAtomic } from '../../src/util/atomic.js';
import { allSubnets, nameHash, VPC_CIDR, VPC_IPV6_CIDR, subnetInfo } from './paths.js';

export interface SecurityGroup {
  id: string;
  name: string;
}

export interface NicModel {
  mac: string;
  deviceNumber: number;
  interfaceId: string;
  subnet: number;
  /** Primary first, then secondary IPs. */
  ips: string[];
  ipv6s?: string[];
  securityGroups: SecurityGroup[];
  /** Epoch ms before which the IMDS hides this NIC (attach --lag). */
  visibleAt?: number;
  /** The instance's name for it (ethN), for humans and CLI lookups. */
  ifname?: string;
  /** OpenStack: false for a port whose subnet has no DHCP (all its IPs static in network_data.json). */
  dhcp?: boolean;
}

/** The cloud the lab emulates: EC2's IMDS, OpenStack's metadata service, or a config drive (plus the service). */
export type Cloud = 'ec2' | 'openstack' | 'configdrive';
export const CLOUDS: Cloud[] = ['ec2', 'openstack', 'configdrive'];

export interface SubnetModel {
  id: string;
  cidr: string;
  ipv6Cidr?: string;
}

export interface MetadataModel {
  version: 1;
  instanceId: string;
  amiId: string;
  instanceType: string;
  reservationId: string;
  accountId: string;
  region: string;
  availabilityZone: string;
  availabilityZoneId: string;
  vpcId: string;
  vpcCidrs: string[];
  vpcIpv6Cidrs?: string[];
  subnets: Record<string, SubnetModel>;
  /** IMDSv2 only ('required') or IMDSv1 allowed too ('optional'). */
  httpTokens: 'required' | 'optional';
  userData: string | null;
  publicKeys: { name: string; key: string }[];
  pendingTime: string;
  nics: NicModel[];
  /** Absent: ec2. */
  cloud?: Cloud;
}

const hex = (n: number) => randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n);

/** `ipv6`: a dual-stack VPC (every subnet has its IPv6 /64, as EC2 lists under subnet-ipv6-cidr-blocks). */
export function newModel(labName: string, mode: 'faithful' | 'generic', userData: string | null, cloud: Cloud = 'ec2', ipv6 = false): MetadataModel {
  const h = nameHash(labName, 8);
  const subnets: Record<string, SubnetModel> = {};
  for (const s of allSubnets()) subnets[String(s.index)] = { id: `subnet-${h}${String(s.index).padStart(9, '0')}`, cidr: s.cidr, ...(ipv6 ? { ipv6Cidr: s.cidr6 } : {}) };
  return {
    version: 1,
    instanceId: `i-${hex(17)}`,
    amiId: `ami-${h}0000cafe0`,
    instanceType: 't3.micro',
    reservationId: `r-${hex(17)}`,
    accountId: '123456789012',
    region: 'us-east-1',
    availabilityZone: 'us-east-1a',
    availabilityZoneId: 'use1-az1',
    vpcId: `vpc-${h}000000001`,
    vpcCidrs: [VPC_CIDR],
    ...(ipv6 ? { vpcIpv6Cidrs: [VPC_IPV6_CIDR] } : {}),
    subnets,
    // Nova's EC2-compatible tree has no session tokens.
    httpTokens: mode === 'faithful' && cloud === 'ec2' ? 'required' : 'optional',
    userData,
    publicKeys: [],
    pendingTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    nics: [],
    ...(cloud === 'ec2' ? {} : { cloud, instanceId: uuid() }),
  };
}

/** A random (version 4) UUID, as Nova's instance ids. */
export function uuid(): string {
  const h = hex(32).split('');
  h[12] = '4';
  h[16] = '89ab'[parseInt(h[16]!, 16) & 3]!;
  const s = h.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

export function newInterfaceId(): string {
  return `eni-${hex(17)}`;
}

export async function loadModel(path: string): Promise<MetadataModel> {
  return JSON.parse(await readFile(path, 'utf8')) as MetadataModel;
}

export async function saveModel(path: string, m: MetadataModel): Promise<void> {
  await writeJsonAtomic(path, m);
}

export function hostnameOf(ip: string, region: string): string {
  const domain = region === 'us-east-1' ? 'ec2.internal' : `${region}.compute.internal`;
  return `ip-${ip.replace(/\./g, '-')}.${domain}`;
}

export function visibleNics(m: MetadataModel, now = Date.now()): NicModel[] {
  return m.nics.filter((n) => !n.visibleAt || n.visibleAt <= now).sort((a, b) => a.deviceNumber - b.deviceNumber);
}

// ---------------------------------------------------------------------------------------------
// The tree served by the IMDS. A directory is an object; a leaf is a string.

export type Tree = { [k: string]: Tree | string };

/** Versions the real IMDS lists at "/". */
export const API_VERSIONS = [
  '1.0', '2007-01-19', '2007-03-01', '2007-08-29', '2007-10-10', '2007-12-15', '2008-02-01',
  '2008-09-01', '2009-04-04', '2011-01-01', '2011-05-01', '2012-01-12', '2014-02-25', '2014-11-05',
  '2015-10-20', '2016-04-19', '2016-06-30', '2016-09-02', '2018-03-28', '2018-08-17', '2018-09-24',
  '2019-10-01', '2020-10-27', '2021-01-03', '2021-03-23', '2021-07-15', '2022-09-24', 'latest',
];

const FAKE_SIG = 'TGFiU2lnbmF0dXJlTm90UmVhbA==';

function nicTree(m: MetadataModel, n: NicModel, version: string): Tree {
  const sub = m.subnets[String(n.subnet)] ?? { id: 'subnet-unknown', cidr: subnetInfo(n.subnet).cidr };
  const t: Tree = {
    'device-number': String(n.deviceNumber),
    'interface-id': n.interfaceId,
    'local-hostname': hostnameOf(n.ips[0] ?? '0.0.0.0', m.region),
    'local-ipv4s': n.ips.join('\n'),
    mac: n.mac,
    'network-card-index': '0',
    'owner-id': m.accountId,
    'security-group-ids': n.securityGroups.map((g) => g.id).join('\n'),
    'security-groups': n.securityGroups.map((g) => g.name).join('\n'),
    'subnet-id': sub.id,
    'subnet-ipv4-cidr-block': sub.cidr,
    'vpc-id': m.vpcId,
    'vpc-ipv4-cidr-block': m.vpcCidrs[0] ?? VPC_CIDR,
    'vpc-ipv4-cidr-blocks': m.vpcCidrs.join('\n'),
  };
  const v6 = version === 'latest' || version >= '2016-09-02';
  if (v6 && n.ipv6s && n.ipv6s.length) {
    t['ipv6s'] = n.ipv6s.join('\n');
    if (sub.ipv6Cidr) t['subnet-ipv6-cidr-blocks'] = sub.ipv6Cidr;
    if (m.vpcIpv6Cidrs?.length) t['vpc-ipv6-cidr-blocks'] = m.vpcIpv6Cidrs.join('\n');
  }
  return t;
}

export function identityDocument(m: MetadataModel, now = Date.now()): string {
  const primary = visibleNics(m, now).find((n) => n.deviceNumber === 0);
  const doc = {
    accountId: m.accountId,
    architecture: 'x86_64',
    availabilityZone: m.availabilityZone,
    billingProducts: null,
    devpayProductCodes: null,
    marketplaceProductCodes: null,
    imageId: m.amiId,
    instanceId: m.instanceId,
    instanceType: m.instanceType,
    kernelId: null,
    pendingTime: m.pendingTime,
    privateIp: primary?.ips[0] ?? null,
    ramdiskId: null,
    region: m.region,
    version: '2017-09-30',
  };
  return JSON.stringify(doc, null, 2);
}

/** The whole tree of one API version at time `now` (lagging NICs left out). */
export function buildTree(m: MetadataModel, version: string, now = Date.now()): Tree {
  const nics = visibleNics(m, now);
  const primary = nics.find((n) => n.deviceNumber === 0);
  const macs: Tree = {};
  for (const n of nics) macs[n.mac] = nicTree(m, n, version);
  const md: Tree = {
    'ami-id': m.amiId,
    'ami-launch-index': '0',
    'ami-manifest-path': '(unknown)',
    'block-device-mapping': { ami: 'xvda', root: '/dev/xvda' },
    'instance-action': 'none',
    'instance-id': m.instanceId,
    'instance-life-cycle': 'on-demand',
    'instance-type': m.instanceType,
    network: { interfaces: { macs } },
    placement: {
      'availability-zone': m.availabilityZone,
      'availability-zone-id': m.availabilityZoneId,
      region: m.region,
    },
    profile: 'default-hvm',
    'reservation-id': m.reservationId,
    'security-groups': (primary?.securityGroups ?? [{ id: '', name: 'default' }]).map((g) => g.name).join('\n'),
    services: { domain: 'amazonaws.com', partition: 'aws' },
  };
  if (primary) {
    const hn = hostnameOf(primary.ips[0] ?? '0.0.0.0', m.region);
    md['hostname'] = hn;
    md['local-hostname'] = hn;
    md['local-ipv4'] = primary.ips[0] ?? '';
    md['mac'] = primary.mac;
  }
  if (m.publicKeys.length) {
    const pk: Tree = {};
    m.publicKeys.forEach((k, i) => (pk[String(i)] = { 'openssh-key': k.key }));
    md['public-keys'] = pk;
  }
  const root: Tree = {
    'meta-data': md,
    dynamic: {
      'instance-identity': {
        document: identityDocument(m, now),
        pkcs7: FAKE_SIG,
        rsa2048: FAKE_SIG,
        signature: FAKE_SIG,
      },
    },
  };
  if (m.userData !== null) root['user-data'] = m.userData;
  return root;
}

export type Lookup = { kind: 'leaf'; body: string } | { kind: 'dir'; body: string } | { kind: 'missing' };

/** Listing of a directory: names sorted, subtrees with a trailing "/" (public-keys as "0=name"). */
function listing(t: Tree, path: string[], m: MetadataModel): string {
  if (path.length === 2 && path[0] === 'meta-data' && path[1] === 'public-keys') {
    return m.publicKeys.map((k, i) => `${i}=${k.name}`).join('\n');
  }
  return Object.keys(t)
    .sort()
    .map((k) => (typeof t[k] === 'string' ? k : `${k}/`))
    .join('\n');
}

/** Look a path (below the version, e.g. ["meta-data","network"]) up in the tree. */
export function lookup(m: MetadataModel, version: string, segs: string[], now = Date.now()): Lookup {
  const tree = buildTree(m, version, now);
  let cur: Tree | string = tree;
  for (const s of segs) {
    if (typeof cur === 'string') return { kind: 'missing' };
    const next: Tree | string | undefined = Object.prototype.hasOwnProperty.call(cur, s) ? cur[s] : undefined;
    if (next === undefined) return { kind: 'missing' };
    cur = next;
  }
  if (typeof cur === 'string') return { kind: 'leaf', body: cur };
  if (segs.length === 0) {
    // version root: real IMDS lists "dynamic\nmeta-data\nuser-data" without slashes
    return { kind: 'dir', body: Object.keys(cur).sort().join('\n') };
  }
  return { kind: 'dir', body: listing(cur, segs, m) };
}
