/**
 * Debian's ifupdown with dhclient (cloud-init's `eni` renderer, IfUpDownActivator): its state
 * files under /run/network, `ifdown --force` for a stanza that is already gone, and dhclient's
 * lease files for the gateway.
 */
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { dhclientLeaseGateway } from './dhclient-lease.js';
import { linkExists } from '../util/sysfs.js';
import type { DhcpClient, NetworkStack } from './network-stack.js';
import { dhcpClientsOf, stopDhcpClients } from './dhcp-clients.js';
import { finishScrub } from './command.js';

export class IfupdownStack implements NetworkStack {
  readonly name: string = 'ifupdown';
  constructor(private readonly root: string = process.env.HOTPLUG_ROOT ?? '/') {}

  /** What ifup recorded in ifstate.<if> ('' when missing or empty). */
  private async ifupState(ifname: string): Promise<string> {
    return (await readFile(join(this.root, 'run/network', `ifstate.${ifname}`), 'utf8').catch(() => '')).trim();
  }

  async renderedButDown(names: readonly string[]): Promise<string[]> {
    if (!existsSync(join(this.root, 'run/network'))) return [];
    // ifup creates ifstate.<if> as its lock when it starts and writes the state into it only when
    // done: an empty one is an ifup that was killed (or an ifdown), not an interface that is up.
    const out: string[] = [];
    for (const n of names) if (linkExists(n, this.root) && !(await this.ifupState(n))) out.push(n);
    return out;
  }

  /** ifupdown's per-interface state and the DHCP client's pid files. */
  stateFiles(ifname: string): string[] {
    return [join(this.root, 'run/network', `ifstate.${ifname}`), join(this.root, 'run', `dhclient.${ifname}.pid`), join(this.root, 'run', `dhclient6.${ifname}.pid`)];
  }

  async scrub(ifname: string): Promise<{ killed: number; files: number }> {
    const killed = await stopDhcpClients(ifname);
    // If the activator's ifdown did not run or failed (device gone, stanza already re-rendered
    // away), ifupdown's aggregate state still lists it (`ifquery --state` would report it up): let
    // ifdown itself drop it, under its own lock, with a throw-away manual stanza (whose down
    // commands, `ip addr flush` and `ip link set down`, are what this scrub does anyway).
    const agg = await readFile(join(this.root, 'run/network/ifstate'), 'utf8').catch(() => '');
    if (this.root === '/' && agg.split('\n').some((l) => l.split('=')[0] === ifname)) {
      await execa('ifdown', ['--force', '--no-scripts', '-i', '/dev/stdin', ifname], { input: `iface ${ifname} inet manual\n`, reject: false });
    }
    let files = 0;
    for (const f of this.stateFiles(ifname)) {
      if (existsSync(f)) {
        await rm(f, { force: true });
        files++;
      }
    }
    return finishScrub(ifname, linkExists(ifname, this.root), killed, files);
  }

  leaseGateway(ifname: string): Promise<string | undefined> {
    return dhclientLeaseGateway(ifname, { leaseDir: join(this.root, 'var/lib/dhcp') });
  }

  dhcpClients(ifnames: readonly string[]): Promise<DhcpClient[]> {
    return dhcpClientsOf(ifnames);
  }
}
