/**
 * The input adapter of policy routing: from the bridge's summary to desired.ts's NicMeta shape.
 * EC2's own per-NIC metadata is used as it is; every other datasource (OpenStack, ConfigDrive)
 * comes as the bridge's generic ports (static addresses, DHCP or not, gateway, index), mapped
 * here onto the same shape: the DHCP address, which no such metadata lists, is the one the
 * interface holds besides its static ones; a static port's gateway is metadata's.
 */
import type { InstanceSummary, NicMeta, PortMeta } from '../../bridge/index.js';
import type { ActualAddress } from './actual.js';
import type { LinkInfo } from './desired.js';
import { formatIp, mask, parseIp } from './addr.js';

export interface RoutingMeta {
  nics: Record<string, NicMeta>;
  primaryMac: string | null;
  /** Gateways metadata gives for static ports (ifname → address); a DHCP lease's are read elsewhere. */
  gateways: Record<string, string>;
  gateways6: Record<string, string>;
}

const network = (address: string, prefixlen: number): string | null => {
  const ip = parseIp(address);
  if (!ip) return null;
  return `${formatIp(ip.family, ip.value & mask(ip.family, prefixlen))}/${prefixlen}`;
};

/** The address a DHCP client gave the interface: its first IPv4 address that metadata does not list as static. */
function dhcpAddress(p: PortMeta, ifname: string, addresses: ActualAddress[]): { address: string; prefixlen: number } | undefined {
  const statics = new Set(p.ipv4.map((a) => a.address));
  return addresses.find((a) => a.family === 4 && a.dev === ifname && !statics.has(a.address) && !a.address.startsWith('169.254.'));
}

/** NicMeta for a port: what desired.ts reads (first IPv4 = the DHCP or first static one, then the rest). */
export function nicMetaOfPort(p: PortMeta, link: LinkInfo | undefined, addresses: ActualAddress[]): NicMeta {
  const dhcp = p.dhcp4 && link ? dhcpAddress(p, link.ifname, addresses) : undefined;
  // A DHCP port whose lease is not there yet: no IPv4 at all, so desired.ts leaves it incomplete
  // (nothing planned, nothing deleted) instead of taking a static one for its primary address.
  const v4 = p.dhcp4 ? (dhcp ? [dhcp, ...p.ipv4] : []) : p.ipv4;
  const subnets6 = [...new Set(p.ipv6.map((a) => network(a.address, a.prefixlen)).filter((x): x is string => !!x))];
  return {
    mac: p.mac,
    device_number: p.index,
    network_card: 0,
    interface_id: null,
    ipv4s: v4.map((a) => a.address),
    ipv6s: p.ipv6.map((a) => a.address),
    subnet_ipv4_cidr: v4[0] ? network(v4[0].address, v4[0].prefixlen) : null,
    subnet_ipv6_cidrs: subnets6,
    ipv4_prefixes: [],
    ipv6_prefixes: [],
  };
}

export function routingMeta(
  summary: Pick<InstanceSummary, 'nics' | 'primary_mac'> & Partial<Pick<InstanceSummary, 'ports'>>,
  actual: { links: LinkInfo[]; addresses: ActualAddress[] },
): RoutingMeta {
  const nics: Record<string, NicMeta> = { ...(summary.nics ?? {}) };
  const gateways: Record<string, string> = {};
  const gateways6: Record<string, string> = {};
  for (const [mac, p] of Object.entries(summary.ports ?? {})) {
    if (mac in nics) continue; // the datasource's own (EC2) metadata says more
    const link = actual.links.find((l) => l.mac === mac && !l.stacked);
    nics[mac] = nicMetaOfPort(p, link, actual.addresses);
    if (!link) continue;
    if (!p.dhcp4 && p.gateway4) gateways[link.ifname] = p.gateway4;
    if (p.gateway6) gateways6[link.ifname] = p.gateway6;
  }
  return { nics, primaryMac: summary.primary_mac, gateways, gateways6 };
}
