/**
 * systemd-networkd, rendered by cloud-init's `networkd` renderer (10-cloud-init-IF.network in
 * /etc/systemd/network) or through netplan (50-cloud-init.yaml → 10-netplan-IF.network in
 * /run/systemd/network). Its DHCP client is networkd itself; leases and link state live in
 * /run/systemd/netif/{leases,links}/<ifindex>.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DhcpClient, NetworkStack } from './network-stack.js';
import { dhcpClientsOf, stopDhcpClients } from './dhcp-clients.js';
import { leaseIfnameOk } from './dhclient-lease.js';
import { systemTool, ifindexOf, finishScrub, type ToolRunner } from './command.js';
import { networkdConfigured, networkdLeaseRouter } from './networkd-parse.js';
import { linkExists } from '../util/sysfs.js';
import { log } from '../util/log.js';

const readOrNull = (p: string) => readFile(p, 'utf8').catch(() => null);

export class NetworkdStack implements NetworkStack {
  /** `netplan` when cloud-init renders through netplan (the files differ; networkd is the same). */
  constructor(
    readonly name: 'networkd' | 'netplan' = 'networkd',
    private readonly root: string = process.env.HOTPLUG_ROOT ?? '/',
    private readonly tool: ToolRunner = systemTool,
  ) {}

  /** The .network files the renderer (and netplan generate) write for an interface. */
  networkFiles(ifname: string): string[] {
    return [join(this.root, 'etc/systemd/network', `10-cloud-init-${ifname}.network`), join(this.root, 'run/systemd/network', `10-netplan-${ifname}.network`)];
  }

  private netifDir(kind: 'leases' | 'links'): string {
    return join(this.root, 'run/systemd/netif', kind);
  }

  /** Present links with a rendered .network file that networkd has not configured with it. */
  async renderedButDown(names: readonly string[]): Promise<string[]> {
    if (!existsSync(this.netifDir('links'))) return []; // networkd is not running: no way to tell
    const out: string[] = [];
    for (const n of names) {
      if (!leaseIfnameOk(n) || !linkExists(n, this.root)) continue;
      const file = this.networkFiles(n).find((f) => existsSync(f));
      if (!file) continue;
      const idx = await ifindexOf(n, this.root, readOrNull);
      if (idx === undefined) continue;
      // networkd records the path it read (under / on the running system)
      const state = await readOrNull(join(this.netifDir('links'), String(idx)));
      if (!networkdConfigured(state, file.slice(this.root.replace(/\/$/, '').length) || file)) out.push(n);
    }
    return out;
  }

  /**
   * cloud-init 22.4.2's NetworkdActivator brings a hot-added NIC up with `ip link set up` only:
   * networkd reads .network files at start and on `networkctl reload`, so a file rendered for a
   * NIC that appeared after it started is not applied. Reload once the renderer has written.
   */
  async rendered(): Promise<void> {
    if (this.root !== '/' || !existsSync(this.netifDir('links'))) return;
    const r = await this.tool('networkctl', ['reload']);
    if (r.exitCode !== 0) log('warn', 'networkctl reload failed', { error: r.stderr.trim() || `exit ${r.exitCode}` });
  }

  async scrub(ifname: string): Promise<{ killed: number; files: number }> {
    if (!leaseIfnameOk(ifname)) return { killed: 0, files: 0 };
    const killed = await stopDhcpClients(ifname); // none normally: networkd is its own DHCP client
    let files = 0;
    for (const f of this.networkFiles(ifname)) {
      if (existsSync(f)) {
        await rm(f, { force: true });
        files++;
      }
    }
    // Leases and link state of links that no longer exist (networkd drops them itself when it
    // sees the link go; not when it was down then). Interface indexes are not reused soon.
    const present = new Set<string>();
    for (const l of await readdir(join(this.root, 'sys/class/net')).catch(() => [] as string[])) {
      const i = await ifindexOf(l, this.root, readOrNull);
      if (i !== undefined) present.add(String(i));
    }
    for (const kind of ['leases', 'links'] as const) {
      for (const f of await readdir(this.netifDir(kind)).catch(() => [] as string[])) {
        if (/^\d+$/.test(f) && !present.has(f)) {
          await rm(join(this.netifDir(kind), f), { force: true });
          files++;
        }
      }
    }
    if (this.root === '/' && existsSync(this.netifDir('links'))) await this.tool('networkctl', ['reload']);
    return finishScrub(ifname, linkExists(ifname, this.root) && this.root === '/', killed, files);
  }

  async leaseGateway(ifname: string): Promise<string | undefined> {
    const idx = await ifindexOf(ifname, this.root, readOrNull);
    return idx === undefined ? undefined : networkdLeaseRouter(await readOrNull(join(this.netifDir('leases'), String(idx))));
  }

  dhcpClients(ifnames: readonly string[]): Promise<DhcpClient[]> {
    return dhcpClientsOf(ifnames);
  }
}
