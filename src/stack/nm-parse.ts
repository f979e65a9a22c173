/**
 * Reading what NetworkManager 1.42 (Debian 12) prints and writes, from recorded real outputs in
 * test/fixtures/stack/nm: `nmcli -t -f DHCP4 device show IF`, `nmcli -t -f GENERAL.CONNECTION …`
 * and its per-device state file /run/NetworkManager/devices/<ifindex>. Pure functions.
 */
import { createHash } from 'node:crypto';
import { parseIp } from '../routing/addr.js';

/** The first IPv4 router in a list such as "10.0.2.1" or "10.0.2.1 10.0.2.2" (or comma-separated). */
function firstRouter(v: string | undefined): string | undefined {
  const first = (v ?? '').trim().split(/[\s,]+/)[0];
  return first ? parseIp(first, 4)?.text : undefined;
}

/** `routers` of `nmcli -t -f DHCP4 device show IF` ("DHCP4.OPTION[N]:routers = A"). */
export function nmcliDhcp4Router(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const m = /^DHCP4\.OPTION\[\d+\]:routers = (.*)$/.exec(line.trim());
    if (m) return firstRouter(m[1]);
  }
  return undefined;
}

/** `dhcp4.routers` in the [dhcp4] group of /run/NetworkManager/devices/<ifindex>. */
export function deviceStateRouter(text: string | null): string | undefined {
  if (!text) return undefined;
  let group = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const g = /^\[(.+)\]$/.exec(line);
    if (g) {
      group = g[1]!;
      continue;
    }
    if (group === 'dhcp4' && line.startsWith('dhcp4.routers=')) return firstRouter(line.slice('dhcp4.routers='.length));
  }
  return undefined;
}

/** A value of `nmcli -t -f FIELD device show IF` ("FIELD:value"), '' when absent. */
export function nmcliField(text: string, field: string): string {
  for (const line of text.split('\n')) if (line.startsWith(`${field}:`)) return line.slice(field.length + 1).trim();
  return '';
}

/**
 * cloud-init's profile name and UUID for an interface (cloudinit/net/network_manager.py: id
 * "cloud-init NAME", uuid5 of its fixed namespace and NAME): known without asking NM, also for a
 * device that is already gone.
 */
export const CI_NM_NAMESPACE = 'a3924cb8-09e0-43e9-890b-77972a800108';
export function cloudInitConnection(ifname: string): { id: string; uuid: string; file: string } {
  const ns = Buffer.from(CI_NM_NAMESPACE.replace(/-/g, ''), 'hex');
  const h = createHash('sha1').update(ns).update(ifname, 'utf8').digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return {
    id: `cloud-init ${ifname}`,
    uuid: `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`,
    file: `cloud-init-${ifname}.nmconnection`,
  };
}

/**
 * cloud-init 22.4.2's NetworkManager renderer drops a subnet's `metric` (Ec2 gives every
 * secondary NIC `dhcp4-overrides: {route-metric: 100 × index}`; eni and networkd render it): the
 * secondary NIC's default route then wins over the primary's in main. The keyfile with
 * `route-metric` set in [ipv4] (and [ipv6] when present), or null when nothing needs changing.
 */
export function withRouteMetric(keyfile: string, metric: number): string | null {
  if (!Number.isInteger(metric) || metric < 0 || metric > 0xffffffff) return null;
  const lines = keyfile.split('\n');
  let group = '';
  let changed = false;
  const out: string[] = [];
  const flush = () => {
    if ((group === 'ipv4' || group === 'ipv6') && !seen.has(group)) {
      // insert before trailing blank lines of the group
      let i = out.length;
      while (i > 0 && out[i - 1]!.trim() === '') i--;
      out.splice(i, 0, `route-metric=${metric}`);
      changed = true;
    }
  };
  const seen = new Set<string>();
  for (const line of lines) {
    const g = /^\[(.+)\]\s*$/.exec(line.trim());
    if (g) {
      flush();
      group = g[1]!;
      out.push(line);
      continue;
    }
    if ((group === 'ipv4' || group === 'ipv6') && /^route-metric\s*=/.test(line.trim())) {
      seen.add(group);
      const want = `route-metric=${metric}`;
      if (line.trim() !== want) changed = true;
      out.push(want);
      continue;
    }
    out.push(line);
  }
  flush();
  return changed ? out.join('\n') : null;
}
