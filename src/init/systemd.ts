/**
 * Running under systemd: readiness through sd_notify, and DHCP clients rehomed into scopes.
 *
 * A DHCP client that `ifup` starts during our bring-up is a child of whoever ran it: the worker's
 * transient unit (or the boot replay, or the daemon), and when that unit ends systemd kills
 * everything in its cgroup, the DHCP client included: the address then lives only until the lease
 * expires. Debian's own ifup@.service avoids this by keeping the client in a unit that outlives
 * ifup. We give each client a scope of its own, the way `systemd-run --scope` does (the manager's
 * StartTransientUnit with the client's PID), so it lives as long as the interface's configuration.
 */
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import type { DhcpClient } from '../stack/network-stack.js';
import type { InitSystem } from './init-system.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';

/** The unit a process's cgroup (v2 "0::/…", or v1 name=systemd) says it belongs to, or null. */
export function unitOfCgroup(text: string): string | null {
  for (const line of text.split('\n')) {
    const m = /^(?:0::|\d+:name=systemd:)(\/\S*)$/.exec(line.trim());
    if (!m) continue;
    const last = m[1]!.split('/').filter(Boolean).pop() ?? '';
    return /\.(service|scope)$/.test(last) ? last : null;
  }
  return null;
}

/** Units whose end would take the DHCP client with it: ours. */
export const isOurUnit = (unit: string | null): boolean => !!unit && /^cloud-hotplug-[A-Za-z0-9@_.-]*\.service$/.test(unit);

/** A scope name for the client: the interface name (validated upstream) with anything unit names do not allow hex-escaped. */
export function scopeName(ifname: string, pid: number): string {
  const safe = [...ifname].map((c) => (/[A-Za-z0-9_.-]/.test(c) ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)).join('');
  return `dhcp-client-${safe}-${pid}.scope`;
}

/** busctl's argv for StartTransientUnit(name, "fail", [Description, PIDs, CollectMode], []). */
export function startScopeArgv(name: string, pid: number, description: string): string[] {
  return [
    'call', '--quiet', 'org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager',
    'StartTransientUnit', 'ssa(sv)a(sa(sv))', name, 'fail',
    '3', 'Description', 's', description, 'PIDs', 'au', '1', String(pid), 'CollectMode', 's', 'inactive-or-failed',
    '0',
  ];
}

export class Systemd implements InitSystem {
  readonly name = 'systemd' as const;

  async notifyReady(status: string): Promise<void> {
    if (!process.env.NOTIFY_SOCKET) return;
    const r = await execa('systemd-notify', ['--ready', `--pid=${process.pid}`, `--status=${status}`], { reject: false, stdin: 'ignore' });
    if (r.exitCode !== 0) log('warn', 'systemd-notify --ready failed', { error: String(r.stderr).trim() || `exit ${r.exitCode}` });
  }

  async rehomeDhcpClients(clients: readonly DhcpClient[]): Promise<number> {
    let moved = 0;
    for (const { pid, ifname } of clients) {
      const unit = unitOfCgroup(await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => ''));
      if (!isOurUnit(unit)) continue; // networking.service, a login session …: already has a home
      const name = scopeName(ifname, pid);
      const r = await execa('busctl', startScopeArgv(name, pid, `DHCP client for ${ifname} (brought up by cloud-hotplug)`), { reject: false, timeout: 10_000 });
      if (r.exitCode === 0) {
        moved++;
        log('info', 'DHCP client moved to its own scope', { iface: ifname, pid, unit: name, from: unit });
      } else {
        log('warn', 'DHCP client left in our unit: it will stop when the unit does', { iface: ifname, pid, error: oneLine(r.stderr || r.message) });
      }
    }
    return moved;
  }
}
