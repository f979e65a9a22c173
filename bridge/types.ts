/**
 * The plain data the Python bridge returns (as TS types) and the bridge's one error class.
 * Shared by the bridge's API (index.ts), its reply checks (schema.ts) and its keeper (manager.ts).
 */

export type NetworkConfig = { version: number; config?: Array<Record<string, unknown>>; ethernets?: Record<string, unknown> } & Record<
  string,
  unknown
>;

/** A physical interface of a network config, as cloud-init's own parse of it resolves it. */
export interface NetInterface {
  /** The device name cloud-init resolves (v2 `set-name`, or the device that has the matched MAC). */
  name: string;
  /** Lowercase; null when the config names no MAC. */
  mac: string | null;
  /** The config's own key (v2 `ethernets` key) or name (v1). */
  id: string;
}

export interface NicMeta {
  mac: string;
  device_number: string | number | null;
  network_card: string | number | null;
  interface_id: string | null;
  ipv4s: string[];
  ipv6s: string[];
  /** A list only when the metadata leaf had several lines (cloud-init splits those); routing refuses it. */
  subnet_ipv4_cidr: string | string[] | null;
  subnet_ipv6_cidrs: string[];
  ipv4_prefixes: string[];
  ipv6_prefixes: string[];
}

/** A static address of a port, with its prefix length. */
export interface PortAddress {
  address: string;
  prefixlen: number;
}

/**
 * One NIC as any datasource describes it, derived by the bridge from the network config
 * cloud-init itself built (its NetworkState parse), so that TS needs no datasource's key names.
 */
export interface PortMeta {
  mac: string;
  /** Device index when the datasource gives one (EC2 device-number; OpenStack: place in network_data.json's links). */
  index: number | null;
  /** The interface name in cloud-init's config; null when the NIC is not on this system. */
  name: string | null;
  /** Addresses by DHCP (IPv4) or DHCPv6/SLAAC: not listed, the DHCP client's. */
  dhcp4: boolean;
  dhcp6: boolean;
  /** Static addresses in metadata order. */
  ipv4: PortAddress[];
  ipv6: PortAddress[];
  /** Default gateway from metadata (a default route or a subnet gateway); null: none / the DHCP lease's. */
  gateway4: string | null;
  gateway6: string | null;
  /** Other routes from metadata: canonical "net/len" and gateway. */
  routes: { dst: string; gateway: string }[];
}

export interface HotplugState {
  enabled: boolean;
  reason: string;
}

export interface InstanceSummary {
  datasource: string;
  dsname: string | null;
  instance_id: string;
  platform: string | null;
  subplatform: string | null;
  cloud_name: string | null;
  macs: string[];
  primary_mac: string | null;
  nics: Record<string, NicMeta>;
  /** Every datasource: MAC → generic description (see PortMeta). Absent from older bridges. */
  ports?: Record<string, PortMeta>;
  /** The network metadata cannot change while the instance runs (a config drive without a fallback). */
  metadata_static?: boolean;
  /** Where network metadata comes from, for humans ("OpenStack metadata service …", "config drive …"). */
  metadata_source?: string;
  hotplug: HotplugState;
  /** NICs whose metadata the bridge refused at the last crawl (invalid values): MAC → why. */
  rejected_nics?: Record<string, string>;
  /** The same entries in detail: whether the key is a MAC at all, and the MAC its `mac` leaf names (if one). */
  rejected_entries?: Record<string, RejectedEntry>;
}

export interface RejectedEntry {
  why: string;
  key_is_mac: boolean;
  mac: string | null;
}

export interface PreviewFile {
  path: string;
  content: string;
  current: string | null;
  changed: boolean;
}

/** The network stack cloud-init would use on this instance; null when it finds none. */
export interface NetworkStackInfo {
  /** The renderer's name in cloud-init's list: eni, netplan, networkd, sysconfig, … */
  renderer: string | null;
  /** The activator's class name: IfUpDownActivator, NetplanActivator, … */
  activator: string | null;
}

/** Where the bridge's own log lines go (the CLI passes its logger; the default drops them). */
export type BridgeLogger = (
  level: 'debug' | 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, string | number | boolean | null | undefined>,
) => void;

export const silentLogger: BridgeLogger = () => {};

/**
 * A failure reported by the Python side or by the bridge itself; one line. `kind` names it
 * (NoCache, BridgeDead, BridgeTimeout, BridgeProtocol, …); `code` is the exit status a CLI uses
 * for it (the same 1 as the CLI's own expected failures).
 */
export class BridgeError extends Error {
  readonly code: number = 1;
  constructor(
    message: string,
    readonly kind: string,
  ) {
    super(message);
    this.name = 'BridgeError';
  }
}
