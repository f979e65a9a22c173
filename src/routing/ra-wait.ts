/**
 * Waiting for IPv6 router advertisements. A NIC's IPv6 table needs its default router, which only
 * an RA tells (the kernel's, or NetworkManager's, route `default via fe80::… proto ra`). On a
 * hot-added NIC the RA often lands after the DHCPv6 lease its configuration waited for, so the
 * routes stage waits a bounded time for it instead of leaving the table without IPv6 routes until
 * some later run.
 */
import { NO_ROUTER6, type Skip } from './spec.js';
import type { IpRunner } from './run.js';
import { readActual, mainDefaultVia } from './actual.js';

/** The kernel solicits after DAD and then every 4 s (rtr_solicit_interval): this covers two retries. */
export const RA_WAIT_MS = 10_000;

/** Interfaces whose IPv6 routes were left out only for want of an RA. */
export function awaitingRouter6(skipped: Skip[]): string[] {
  return [...new Set(skipped.filter((s) => s.what === 'ipv6 routes' && s.reason === NO_ROUTER6 && s.ifname).map((s) => s.ifname!))].sort();
}

/** Poll until each of `ifnames` has an RA default route in main, or `timeoutMs` passes; the ones still without. */
export async function waitRouters6(ifnames: string[], ip: IpRunner, timeoutMs = RA_WAIT_MS, everyMs = 200): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  let left = [...ifnames];
  while (left.length) {
    const { routes, links } = await readActual(ip);
    // A NIC that went away in the meantime is nothing to wait for.
    left = left.filter((n) => links.some((l) => l.ifname === n) && !mainDefaultVia(routes, 6, n));
    if (!left.length || Date.now() >= end) break;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return left;
}
