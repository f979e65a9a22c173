/**
 * What differs between running under systemd and without it (containers, the lab, early boot),
 * behind one interface. One predicate decides which applies: systemd is running when
 * /run/systemd/system exists (sd_booted()'s test).
 */
import type { DhcpClient } from '../stack/network-stack.js';

export interface InitSystem {
  readonly name: 'systemd' | 'none';
  /** Tell the service manager we are ready (Type=notify); nothing without one. */
  notifyReady(status: string): Promise<void>;
  /**
   * Give DHCP clients we started a home that outlives the unit that started them (systemd kills a
   * unit's whole cgroup when it ends). Returns how many were moved.
   */
  rehomeDhcpClients(clients: readonly DhcpClient[]): Promise<number>;
}
