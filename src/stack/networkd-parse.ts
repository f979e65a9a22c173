/**
 * Reading systemd-networkd's (systemd 252) state files, from recorded real ones in
 * test/fixtures/stack/networkd: the DHCPv4 lease /run/systemd/netif/leases/<ifindex>
 * (`ROUTER=A [B…]`) and the link state /run/systemd/netif/links/<ifindex>
 * (`ADMIN_STATE=configured`, `NETWORK_FILE=…`). Pure functions.
 */
import { parseIp } from '../routing/addr.js';

/** KEY=value lines of a networkd state file (comments skipped). */
export function envFile(text: string | null): Map<string, string> {
  const m = new Map<string, string>();
  for (const raw of (text ?? '').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf('=');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

/** The first router of a networkd lease file (ROUTER= holds a space-separated list). */
export function networkdLeaseRouter(text: string | null): string | undefined {
  const first = (envFile(text).get('ROUTER') ?? '').trim().split(/\s+/)[0];
  return first ? parseIp(first, 4)?.text : undefined;
}

/** Whether networkd's link state says it configured (or is configuring) the link with `networkFile`. */
export function networkdConfigured(text: string | null, networkFile?: string): boolean {
  const s = envFile(text);
  const admin = s.get('ADMIN_STATE') ?? '';
  if (!['configured', 'configuring'].includes(admin)) return false;
  return networkFile === undefined || s.get('NETWORK_FILE') === networkFile;
}
