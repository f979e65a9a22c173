/**
 * Correctness as a person would check it, from outside the instance: addresses, policy
 * routing (ours), and after a remove: no DHCP client, no ifupdown state, no config stanza.
 */
import type { LabCtx } from './labctx.js';
import type { Expect } from './watch.js';

export const TABLE_BASE = 10000;

interface RuleJ {
  priority?: number;
  src?: string;
  table?: string | number;
}
interface RouteJ {
  dst?: string;
  dev?: string;
  gateway?: string;
}

export interface NicExpect extends Expect {
  deviceNumber: number;
}

/**
 * Problems with the policy routing of these NICs ([] = all present). On EC2 a NIC's table is
 * 10000 + its device-number (documented); other clouds' metadata has no device number, so there
 * the table is whichever one of ours the NIC's first address has a rule to.
 */
export async function routeProblems(ctx: LabCtx, nics: NicExpect[]): Promise<string[]> {
  const out: string[] = [];
  const rules = await ctx.ipJson<RuleJ[]>(['-4', 'rule', 'show']);
  for (const n of nics) {
    const found = rules.find((r) => r.src === n.ips[0] && Number(r.table) >= TABLE_BASE)?.table;
    const table = ctx.cloud === 'ec2' || found === undefined ? TABLE_BASE + n.deviceNumber : Number(found);
    for (const ip of n.ips) {
      if (!rules.some((r) => r.src === ip && String(r.table) === String(table))) out.push(`no rule from ${ip} lookup ${table}`);
    }
    const routes = await ctx.ipJson<RouteJ[]>(['-4', 'route', 'show', 'table', String(table)]);
    if (!routes.some((r) => r.dst === 'default' && r.dev === n.ifname)) out.push(`no default route via ${n.ifname} in table ${table}`);
  }
  return out;
}

/** What a removed NIC left behind ([] = clean). */
export async function leftovers(ctx: LabCtx, ifname: string, ips: string[], deviceNumber: number, routes: boolean): Promise<string[]> {
  const out: string[] = [];
  for (const pid of ctx.pids()) {
    const argv = ctx.argvOf(pid);
    if (argv[0]?.endsWith('dhclient') && argv.includes(ifname)) out.push(`dhclient ${pid} for ${ifname}`);
  }
  if (ctx.exists(`/run/network/ifstate.${ifname}`)) out.push(`/run/network/ifstate.${ifname}`);
  const eni = (await ctx.read('/etc/network/interfaces.d/50-cloud-init')) ?? '';
  if (new RegExp(`^iface ${ifname}[ :]`, 'm').test(eni) || new RegExp(`^auto ${ifname}$`, 'm').test(eni)) out.push(`stanza for ${ifname} in 50-cloud-init`);
  if (routes) {
    const rules = await ctx.ipJson<RuleJ[]>(['-4', 'rule', 'show']);
    for (const ip of ips) if (rules.some((r) => r.src === ip)) out.push(`rule from ${ip} left`);
    const table = await ctx.ipJson<RouteJ[]>(['-4', 'route', 'show', 'table', String(TABLE_BASE + deviceNumber)]);
    if (table.length) out.push(`table ${TABLE_BASE + deviceNumber} not empty`);
  }
  return out;
}
