/**
 * What the pipeline needs from the host's network stack, behind one small interface in the style
 * of cloud-init's net/activators.py: one class per tool (ifupdown today; networkd, netplan and
 * NetworkManager later), chosen once from the renderer/activator cloud-init reports.
 * cloud-init itself renders and brings interfaces up and down; this covers what it leaves behind.
 */
import type { NetInterface, NetworkConfig } from '../../bridge/types.js';

/** A network config with the interfaces cloud-init resolves from it (what configure renders). */
export interface NetConfigView {
  network_config: NetworkConfig;
  interfaces: NetInterface[];
}

/** A DHCP client process serving one interface. */
export interface DhcpClient {
  pid: number;
  ifname: string;
}

export interface NetworkStack {
  /** Short name for logs and status: 'ifupdown', 'networkd', … */
  readonly name: string;
  /**
   * Of `names` (interfaces a rendered config describes), those present here that this stack never
   * brought up: rendered by an earlier apply whose add gave up or whose worker died before the
   * bring-up. Activators that bring up only what they are asked to would leave them down for good.
   */
  renderedButDown(names: readonly string[]): Promise<string[]>;
  /** Leave nothing of `ifname` that bring-down may have left (DHCP client, state files, addresses); safe when the device is gone. */
  scrub(ifname: string): Promise<{ killed: number; files: number }>;
  /** The IPv4 router of the interface's current DHCP lease, as this stack's client recorded it. */
  leaseGateway(ifname: string): Promise<string | undefined>;
  /** The DHCP clients serving `ifnames` (in our network namespace). */
  dhcpClients(ifnames: readonly string[]): Promise<DhcpClient[]>;
  /**
   * cloud-init's renderer has just written `view`, and the activator is about to bring interfaces
   * up: make up for what the renderer or activator of cloud-init 22.4.2 leaves out on this stack.
   */
  rendered?(view: NetConfigView): Promise<void>;
}
