/**
 * The shapes of desired policy routing (what metadata asks for) and the constants of the rule
 * layout. Types only, plus the numbers every routing module agrees on.
 */
import type { NicMeta } from '../../bridge/index.js';
import type { Family } from './addr.js';

export interface LinkInfo {
  ifname: string;
  /** Lower-case MAC. */
  mac: string;
  /** Administratively up (IFF_UP): routes can only be added to an up device. */
  up: boolean;
  /** Stacked on another device (vlan, macvlan: it shares its parent's MAC). */
  stacked?: boolean;
}

export interface DesiredInput {
  nics: Record<string, NicMeta>;
  primaryMac: string | null;
  /** The instance's interfaces now. */
  links: LinkInfo[];
  /** IPv4 gateway per interface from its DHCP lease (ifname → address). */
  gateways: Record<string, string | undefined>;
  /** IPv6 default router per interface from router advertisements. */
  gateways6?: Record<string, string | undefined>;
  config: { table_base: number; primary: string | null };
}

export interface RuleSpec {
  family: Family;
  /** Source selector as `ip -json rule` prints it plus length: canonical "addr/len", or "all". */
  from: string;
  /** Destination selector (canonical "network/len"), only on the cross-subnet rules. */
  to?: string;
  table: number;
  priority: number;
  /**
   * Only on the main-table rule ahead of the per-NIC rules (`lookup main suppress_prefixlength 0`):
   * routes of this prefix length or shorter (the default route) are ignored in that lookup.
   */
  suppressPrefixlength?: number;
}

export interface RouteSpec {
  family: Family;
  table: number;
  /** "default" or a canonical "network/len". */
  dst: string;
  gateway?: string;
  dev: string;
  scope?: 'link';
}

export interface AddressSpec {
  family: Family;
  dev: string;
  address: string;
  prefixlen: number;
}

/** Secondary addresses of one NIC (what the primary NIC gets: no table, rules or routes). */
export interface AddressPlan {
  mac: string;
  ifname: string;
  up: boolean;
  /** The NIC's primary private IPv4 (first of local-ipv4s), normally from DHCP. */
  primaryIpv4: string | null;
  addresses: AddressSpec[];
}

export interface NicPlan extends AddressPlan {
  table: number;
  priority: number;
  deviceNumber: number;
  networkCard: number;
  gateway4: { address: string; source: 'lease' | 'subnet-first-host' } | null;
  gateway6: string | null;
  rules: RuleSpec[];
  routes: RouteSpec[];
}

export interface Skip {
  mac?: string;
  ifname?: string;
  /** What was skipped, e.g. "ipv4s[2]", "nic", "ipv6 routes". */
  what: string;
  value?: string;
  reason: string;
}

export interface DesiredState {
  primary: { mac: string | null; ifname: string | null; source: 'config' | 'metadata' | 'device-number-0' | 'none' };
  nics: NicPlan[];
  /**
   * `lookup main suppress_prefixlength 0` per family, at priority table_base - 1 (ahead of every
   * per-NIC rule), when some NIC has rules of that family: the main table's more specific routes
   * (a container bridge, a VPN, an operator's route) win over a NIC table's default route.
   */
  mainRules: RuleSpec[];
  /** The primary NIC's secondary addresses (null: primary not present, or its metadata is incomplete). */
  primaryAddresses: AddressPlan | null;
  /**
   * MACs of present links with no complete desired state (in metadata but invalid, or
   * absent from metadata): nothing this project owns for them may be deleted.
   */
  incomplete: string[];
  skipped: Skip[];
}

/** The reason a NIC's IPv6 routes are left out for want of a router (ra-wait.ts waits on it). */
export const NO_ROUTER6 = 'no IPv6 default router known (no router advertisement yet)';

/** The main table. */
export const MAIN_TABLE = 254;
/** The main table's rule; ours must come before it or they never match. */
export const MAIN_RULE_PRIORITY = 32766;
/** Largest device/card number accepted from metadata. */
export const MAX_INDEX = 9999;

/** Priority of the `lookup main suppress_prefixlength 0` rules: just ahead of every per-NIC table/priority. */
export const suppressPriority = (tableBase: number): number => tableBase - 1;
/** Priority of the `from <NIC subnet> to <another NIC's subnet> lookup <NIC table>` rules: ahead of those. */
export const crossPriority = (tableBase: number): number => tableBase - 2;
