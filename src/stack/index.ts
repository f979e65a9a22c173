/**
 * Chooses the NetworkStack once, from the renderer and activator cloud-init reports for this
 * system (the bridge's open), as cloud-init's activators.select_activator does for itself.
 */
import type { NetworkStackInfo } from '../../bridge/types.js';
import type { NetworkStack } from './network-stack.js';
import { IfupdownStack } from './ifupdown.js';
import { NetworkManagerStack } from './network-manager.js';
import { NetworkdStack } from './networkd.js';

export type { NetworkStack, DhcpClient, NetConfigView } from './network-stack.js';

/** What the bridge's open reports: the renderer and activator cloud-init would use here. */
export type StackReport = NetworkStackInfo;

/**
 * The stack behind cloud-init's activator (it brings interfaces up and down, so its tools hold
 * the state we read and scrub), else its renderer. netplan renders for networkd. Without a
 * report (or an unknown one) ifupdown's reading is the harmless default: no ifstate files, no
 * dhclient leases elsewhere, and the gateway then comes from the main table.
 */
export function stackKind(report?: StackReport | null): 'ifupdown' | 'network-manager' | 'networkd' | 'netplan' {
  switch (report?.activator) {
    case 'NetworkManagerActivator':
      return 'network-manager';
    case 'NetplanActivator':
      return 'netplan';
    case 'NetworkdActivator':
      return 'networkd';
    case 'IfUpDownActivator':
      return 'ifupdown';
  }
  switch (report?.renderer) {
    case 'network-manager':
      return 'network-manager';
    case 'netplan':
      return 'netplan';
    case 'networkd':
      return 'networkd';
  }
  return 'ifupdown';
}

export function chooseStack(report?: StackReport | null): NetworkStack {
  const k = stackKind(report);
  if (k === 'network-manager') return new NetworkManagerStack();
  if (k === 'networkd' || k === 'netplan') return new NetworkdStack(k);
  return new IfupdownStack();
}
