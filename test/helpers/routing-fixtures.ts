/**
 * Fixtures for the routing unit tests: a primary (eth0, one IP) and two secondary NICs with two
 * secondary IPs each, the system just after DHCP, and a model of the kernel to apply changes to.
 */
import type { NicMeta } from '../../bridge/index.js';
import { desiredState, type DesiredInput, type LinkInfo } from '../../src/routing/desired.js';
import type { ActualState, ActualRule } from '../../src/routing/actual.js';
import { plan } from '../../src/routing/plan.js';
import type { Change } from '../../src/routing/change.js';
import { nextState } from '../../src/routing/next-state.js';
import { emptyState, ROUTING_PROTO, type OwnedState } from '../../src/routing/state.js';

export const MAC0 = '02:00:00:00:00:10';
export const MAC1 = '02:00:00:00:00:11';
export const MAC2 = '02:00:00:00:00:12';

export function nic(mac: string, dev: number, o: Partial<NicMeta> = {}): NicMeta {
  const s = dev;
  return {
    mac,
    device_number: String(dev),
    network_card: null,
    interface_id: `eni-${dev}`,
    ipv4s: [`10.0.${s}.10`, `10.0.${s}.11`, `10.0.${s}.12`],
    ipv6s: [],
    subnet_ipv4_cidr: `10.0.${s}.0/24`,
    subnet_ipv6_cidrs: [],
    ipv4_prefixes: [],
    ipv6_prefixes: [],
    ...o,
  };
}

export const baseNics = (): Record<string, NicMeta> => ({
  [MAC0]: nic(MAC0, 0, { ipv4s: ['10.0.0.10'] }),
  [MAC1]: nic(MAC1, 1, { ipv4_prefixes: ['10.0.1.64/28'] }),
  [MAC2]: nic(MAC2, 2),
});
export const baseLinks = (): LinkInfo[] => [
  { ifname: 'eth0', mac: MAC0, up: true },
  { ifname: 'eth1', mac: MAC1, up: true },
  { ifname: 'eth2', mac: MAC2, up: true },
];
export const input = (o: Partial<DesiredInput> = {}): DesiredInput => ({
  nics: baseNics(),
  primaryMac: MAC0,
  links: baseLinks(),
  gateways: { eth1: '10.0.1.1' },
  config: { table_base: 10000, primary: null },
  ...o,
});

/** The system just after DHCP: one address per NIC, main-table routes. */
export function dhcpActual(): ActualState {
  return {
    rules: [
      { family: 4, priority: 0, from: 'all', table: 255, protocol: 0, extra: false },
      { family: 4, priority: 32766, from: 'all', table: 254, protocol: 0, extra: false },
      { family: 4, priority: 32767, from: 'all', table: 253, protocol: 0, extra: false },
    ],
    routes: [{ family: 4, table: 254, dst: 'default', gateway: '10.0.0.1', dev: 'eth0', protocol: 16, plain: true }],
    addresses: [0, 1, 2].map((i) => ({ family: 4 as const, dev: `eth${i}`, address: `10.0.${i}.10`, prefixlen: 24 })),
    links: baseLinks(),
    ipv6: true,
  };
}

/** Applies changes to a model of the system the way the kernel would (for idempotence tests). */
export function simulate(a: ActualState, changes: Change[]): ActualState {
  const s: ActualState = structuredClone(a);
  for (const c of changes) {
    if (c.kind === 'rule') {
      const sup = c.rule.suppressPrefixlength;
      const r: ActualRule = { family: c.rule.family, priority: c.rule.priority, from: c.rule.from, ...(c.rule.to ? { to: c.rule.to } : {}), table: c.rule.table, protocol: ROUTING_PROTO, ...(sup === undefined ? { extra: false } : { extra: true, suppress: sup }) };
      if (c.op === 'add') s.rules.push(r);
      else s.rules = s.rules.filter((x) => !(x.family === r.family && x.from === r.from && x.table === r.table && x.priority === r.priority && x.protocol === ROUTING_PROTO && x.suppress === r.suppress && x.to === r.to));
    } else if (c.kind === 'route') {
      const r = c.route;
      const key = (x: { family: number; table: number; dst: string }) => x.family === r.family && x.table === r.table && x.dst === r.dst;
      if (c.op !== 'add') s.routes = s.routes.filter((x) => !(key(x) && x.protocol === ROUTING_PROTO));
      if (c.op !== 'del') s.routes.push({ family: r.family, table: r.table, dst: r.dst, gateway: r.gateway, dev: r.dev, protocol: ROUTING_PROTO, plain: true });
    } else {
      const x = c.address;
      if (c.op === 'add') s.addresses.push({ family: x.family, dev: x.dev, address: x.address, prefixlen: x.prefixlen });
      else s.addresses = s.addresses.filter((y) => !(y.dev === x.dev && y.address === x.address && y.prefixlen === x.prefixlen));
    }
  }
  return s;
}

/** State as a run that applied `changes` would leave it. */
export function ownedAfter(prev: OwnedState, d: ReturnType<typeof desiredState>, after: ActualState, changes: Change[]): OwnedState {
  const added = changes.filter((c): c is Extract<Change, { kind: 'address' }> => c.kind === 'address' && c.op === 'add').map((c) => c.address);
  return nextState(prev, d, after, added, new Date(0));
}

/** The base metadata planned on the DHCP-only system and applied: the system after it, and what we then own. */
export function reconciledOnce(): { a1: ActualState; owned: OwnedState } {
  const full = desiredState(input());
  const cs = plan(full, dhcpActual(), emptyState());
  const a1 = simulate(dhcpActual(), cs);
  return { a1, owned: ownedAfter(emptyState(), full, a1, cs) };
}

export const del = (cs: Change[]) => cs.filter((c) => c.op === 'del');
export const add = (cs: Change[]) => cs.filter((c) => c.op === 'add');
