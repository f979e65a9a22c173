/**
 * Chooses the NetworkStack once, from the renderer and activator cloud-init reports for this
 * system (the bridge's open), as cloud-init's activators.select_activator does for itself.
 */
import type { NetworkStackInfo } from '../../bridge/index.js';
import type { NetworkStack } from './network-stack.js';
import { IfupdownStack } from './ifupdown.js';

export type { NetworkStack, DhcpClient } from './network-stack.js';

/** What the bridge's open reports: the renderer and activator cloud-init would use here. */
export type StackReport = NetworkStackInfo;

/**
 * ifupdown is the only stack implemented so far; on the others (netplan/networkd, NetworkManager)
 * its scrub and lease reading are harmless (no ifstate files, no dhclient leases: the gateway then
 * comes from the main table's default route), which is how the netplan VM flavour runs today.
 */
export function chooseStack(_report?: StackReport | null): NetworkStack {
  return new IfupdownStack();
}
