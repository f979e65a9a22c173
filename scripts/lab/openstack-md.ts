/**
 * The lab's OpenStack metadata, rendered from the same model as the EC2 tree (metadata.ts): what
 * Nova's metadata service serves under /openstack (the version list cloud-init probes, then per
 * version meta_data.json, network_data.json, user_data, vendor_data.json, vendor_data2.json) and
 * what Nova writes on a config drive. Ports are links in attach order; a DHCP port's first fixed
 * IP is an `ipv4_dhcp` network (no address: the DHCP server's), every further fixed IP, and every
 * IP of a port without DHCP, a static `ipv4` network with its netmask and the subnet's default
 * route, as Nova writes them.
 */
import { subnetInfo } from './paths.js';
import { hostnameOf, type Lookup, type MetadataModel, type NicModel } from './metadata.js';

/** The versions Nova lists at /openstack (cloud-init 22.4 picks the newest it knows, else latest). */
export const OPENSTACK_VERSIONS = ['2012-08-10', '2013-04-04', '2013-10-17', '2015-10-15', '2016-06-30', '2016-10-06', '2017-02-22', '2018-08-27', '2020-10-14', 'latest'];

export const OPENSTACK_FILES = ['meta_data.json', 'network_data.json', 'user_data', 'vendor_data.json', 'vendor_data2.json'];

/** Ports Nova lists now: attach order, lagging ones hidden. */
export function visiblePorts(m: MetadataModel, now = Date.now()): NicModel[] {
  return m.nics.filter((n) => !n.visibleAt || n.visibleAt <= now);
}

/** Nova's link id: "tap" and the start of the port id. */
export const linkId = (n: NicModel): string => `tap${n.mac.replace(/:/g, '').slice(-10)}`;

export function networkData(m: MetadataModel, now = Date.now()): Record<string, unknown> {
  const links: Record<string, unknown>[] = [];
  const networks: Record<string, unknown>[] = [];
  for (const n of visiblePorts(m, now)) {
    const link = linkId(n);
    links.push({ id: link, vif_id: n.interfaceId, type: 'ovs', mtu: 1500, ethernet_mac_address: n.mac });
    const sub = subnetInfo(n.subnet);
    const netId = m.subnets[String(n.subnet)]?.id ?? `net-${n.subnet}`;
    const dhcp = n.dhcp !== false;
    n.ips.forEach((ip, i) => {
      const id = `network${networks.length}`;
      if (dhcp && i === 0) {
        networks.push({ id, type: 'ipv4_dhcp', link, network_id: netId });
        return;
      }
      networks.push({
        id,
        type: 'ipv4',
        link,
        ip_address: ip,
        netmask: sub.mask,
        routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: sub.gateway }],
        network_id: netId,
        services: [{ type: 'dns', address: sub.gateway }],
      });
    });
  }
  return { links, networks, services: [{ type: 'dns', address: subnetInfo(1).gateway }] };
}

export function metaData(m: MetadataModel, now = Date.now()): Record<string, unknown> {
  const first = visiblePorts(m, now)[0];
  const hn = hostnameOf(first?.ips[0] ?? '0.0.0.0', m.region).split('.')[0]!;
  const keys = m.publicKeys.map((k) => ({ name: k.name, type: 'ssh', data: k.key }));
  return {
    uuid: m.instanceId,
    name: hn,
    hostname: `${hn}.novalocal`,
    availability_zone: 'nova',
    launch_index: 0,
    project_id: m.accountId,
    devices: [],
    meta: {},
    ...(keys.length ? { keys, public_keys: Object.fromEntries(m.publicKeys.map((k) => [k.name, k.key])) } : {}),
  };
}

/** One file of a version directory; null when Nova would answer 404 (no user-data). */
export function openstackFile(m: MetadataModel, file: string, now = Date.now()): string | null {
  switch (file) {
    case 'meta_data.json':
      return JSON.stringify(metaData(m, now));
    case 'network_data.json':
      return JSON.stringify(networkData(m, now));
    case 'user_data':
      return m.userData;
    case 'vendor_data.json':
    case 'vendor_data2.json':
      return '{}';
    default:
      return null;
  }
}

/** Look up a path below /openstack (segs without "openstack"). */
export function openstackLookup(m: MetadataModel, segs: string[], now = Date.now()): Lookup {
  if (segs.length === 0) return { kind: 'dir', body: OPENSTACK_VERSIONS.join('\n') };
  if (!OPENSTACK_VERSIONS.includes(segs[0]!)) return { kind: 'missing' };
  if (segs.length === 1) return { kind: 'dir', body: OPENSTACK_FILES.filter((f) => f !== 'user_data' || m.userData !== null).join('\n') };
  if (segs.length !== 2) return { kind: 'missing' };
  const body = openstackFile(m, segs[1]!, now);
  return body === null ? { kind: 'missing' } : { kind: 'leaf', body };
}

/** The files of a config drive (paths relative to its root), as Nova writes it once at boot. */
export function configDriveFiles(m: MetadataModel, now = Date.now()): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of ['2018-08-27', 'latest']) {
    for (const f of OPENSTACK_FILES) {
      const body = openstackFile(m, f, now);
      if (body !== null) out[`openstack/${v}/${f}`] = body;
    }
  }
  return out;
}
