/**
 * NetworkManager (cloud-init's `network-manager` renderer, NetworkManagerActivator): cloud-init's
 * keyfiles in /etc/NetworkManager/system-connections, NM's own DHCP client (internal: no process)
 * whose lease NM reports over D-Bus (`nmcli`) and in /run/NetworkManager/devices/<ifindex>.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NetConfigView, DhcpClient, NetworkStack } from './network-stack.js';
import { dhcpClientsOf, stopDhcpClients } from './dhcp-clients.js';
import { leaseIfnameOk } from './dhclient-lease.js';
import { systemTool, ifindexOf, finishScrub, type ToolRunner } from './command.js';
import { cloudInitConnection, deviceStateRouter, nmcliDhcp4Router, nmcliField, withRouteMetric } from './nm-parse.js';
import { routeMetrics } from './route-metric.js';
import { writeFileAtomic } from '../util/atomic.js';
import { linkExists } from '../util/sysfs.js';
import { log } from '../util/log.js';

const readOrNull = (p: string) => readFile(p, 'utf8').catch(() => null);

export class NetworkManagerStack implements NetworkStack {
  readonly name: string = 'network-manager';
  constructor(
    private readonly root: string = process.env.HOTPLUG_ROOT ?? '/',
    private readonly tool: ToolRunner = systemTool,
  ) {}

  private connDir(): string {
    return join(this.root, 'etc/NetworkManager/system-connections');
  }

  /** The connection NM has active on the device ('' when none), or null when NM does not answer. */
  private async activeConnection(ifname: string): Promise<string | null> {
    const r = await this.tool('nmcli', ['-t', '-f', 'GENERAL.CONNECTION', 'device', 'show', ifname]);
    return r.exitCode === 0 ? nmcliField(r.stdout, 'GENERAL.CONNECTION') : null;
  }

  /**
   * Present devices with a cloud-init keyfile whose profile is not the one active on them: never
   * brought up, or holding NM's own automatic "Wired connection N" instead. Nothing when NM does
   * not answer (no way to tell).
   */
  async renderedButDown(names: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const n of names) {
      if (!leaseIfnameOk(n) || !linkExists(n, this.root)) continue;
      const ci = cloudInitConnection(n);
      if (!existsSync(join(this.connDir(), ci.file))) continue;
      const active = await this.activeConnection(n);
      if (active !== null && active !== ci.id) out.push(n);
    }
    return out;
  }

  /**
   * cloud-init 22.4.2 renders no route metric into keyfiles (see withRouteMetric): put the
   * config's metric into the keyfiles it just wrote, before the activator loads them.
   */
  async rendered(view: NetConfigView): Promise<void> {
    for (const [ifname, metric] of routeMetrics(view)) {
      if (!leaseIfnameOk(ifname)) continue;
      const file = join(this.connDir(), cloudInitConnection(ifname).file);
      const text = await readOrNull(file);
      const fixed = text === null ? null : withRouteMetric(text, metric);
      if (fixed === null) continue;
      await writeFileAtomic(file, fixed, 0o600);
      log('debug', 'route metric written into the keyfile (cloud-init 22.4.2 leaves it out)', { iface: ifname, metric });
    }
  }

  async scrub(ifname: string): Promise<{ killed: number; files: number }> {
    if (!leaseIfnameOk(ifname)) return { killed: 0, files: 0 };
    const killed = await stopDhcpClients(ifname); // only with dhcp=dhclient; the internal client is NM itself
    const ci = cloudInitConnection(ifname);
    let files = 0;
    // Through NM first, so it forgets the profile (and its file) rather than keeping it in memory.
    if (this.root === '/') {
      const r = await this.tool('nmcli', ['connection', 'delete', 'uuid', ci.uuid]);
      if (r.exitCode === 0) files++;
    }
    const keyfile = join(this.connDir(), ci.file);
    if (existsSync(keyfile)) {
      await rm(keyfile, { force: true });
      files++;
      if (this.root === '/') await this.tool('nmcli', ['connection', 'reload']);
    }
    // NM's lease files: internal-<uuid>-<if>.lease, dhclient[6]-<uuid>-<if>.lease
    const libDir = join(this.root, 'var/lib/NetworkManager');
    for (const f of await readdir(libDir).catch(() => [] as string[])) {
      if (f.endsWith(`-${ifname}.lease`) && /^(internal6?|dhclient6?)-/.test(f)) {
        await rm(join(libDir, f), { force: true });
        files++;
      }
    }
    return finishScrub(ifname, linkExists(ifname, this.root) && this.root === '/', killed, files);
  }

  /** `routers` of NM's DHCPv4 lease for the device, from nmcli, else from NM's device state file. */
  async leaseGateway(ifname: string): Promise<string | undefined> {
    if (!leaseIfnameOk(ifname)) return undefined;
    const r = await this.tool('nmcli', ['-t', '-f', 'DHCP4', 'device', 'show', ifname]);
    const gw = r.exitCode === 0 ? nmcliDhcp4Router(r.stdout) : undefined;
    if (gw) return gw;
    const idx = await ifindexOf(ifname, this.root, readOrNull);
    return idx === undefined ? undefined : deviceStateRouter(await readOrNull(join(this.root, 'run/NetworkManager/devices', String(idx))));
  }

  dhcpClients(ifnames: readonly string[]): Promise<DhcpClient[]> {
    return dhcpClientsOf(ifnames);
  }
}
