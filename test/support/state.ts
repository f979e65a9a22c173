/**
 * What an instance's network state must be, given what metadata says about its NICs, and the
 * differences from a snapshot (collect.ts). Independent of the code under test: the expectation is
 * written from the metadata model and cloud-init's documented rendering, not from our planner.
 *
 * For every NIC attached and listed in metadata (device-number D, IPv4s ip0..ipN, subnet S/len):
 *   addresses  exactly ip0..ipN/len on ethD (ip0 from DHCP, the rest cloud-init's static aliases)
 *   ENI        auto ethD; iface ethD inet dhcp [metric 100*(D+1), only with 2+ NICs]; one control-alias static stanza
 *              per secondary address; nothing for any other interface (besides lo)
 *   DHCP       exactly one client for ethD, none for an interface that does not exist
 *   ifupdown   /run/network/ifstate.<if> for exactly lo and the NICs; the aggregate file likewise
 *   routing    D > 0: table T = base + D with "S dev ethD scope link" and "default via gw dev ethD",
 *              rules "from ipK lookup T priority T", "from S to <other NIC's subnet> lookup T priority
 *              base-2", and while any NIC has a table "lookup main suppress_prefixlength 0 priority
 *              base-1" (all protocol 199); nothing else of protocol 199
 *   main table a default route via ethD (the DHCP client's)
 *   our state  known-interfaces.json lists exactly the hot-plugged NICs with their MACs;
 *              routing-state.json owns exactly the present NICs' tables
 */
import { parseEni, type EniStanza } from './eni.js';
import { dhcpIface, isDhcpClient, type Snapshot } from './collect.js';

export interface ExpectedNic {
  ifname: string;
  mac: string;
  deviceNumber: number;
  /** Primary first. */
  ips: string[];
  prefixlen: number;
  /** Subnet in canonical "a.b.c.d/len" form. */
  cidr: string;
  gateway: string;
}

export interface CompareOptions {
  tableBase?: number;
  protocol?: number;
  /** Check known-interfaces.json (only NICs configured through events are in it; default true). */
  known?: boolean;
}

const sorted = (a: Iterable<string>) => [...a].sort();

function setDiff(what: string, want: Iterable<string>, got: Iterable<string>): string[] {
  const w = new Set(want);
  const g = new Set(got);
  const out: string[] = [];
  for (const x of sorted(w)) if (!g.has(x)) out.push(`${what}: missing ${x}`);
  for (const x of sorted(g)) if (!w.has(x)) out.push(`${what}: unexpected ${x}`);
  return out;
}

function stanzaKey(s: EniStanza): string {
  return `${s.alias ? 'alias ' : ''}${s.iface} ${s.family} ${s.method}${s.options.length ? ' [' + [...s.options].sort().join('; ') + ']' : ''}`;
}

export function expectedEni(nics: ExpectedNic[]): { auto: string[]; stanzas: string[] } {
  const auto = ['lo'];
  const stanzas = ['lo inet loopback'];
  for (const n of nics) {
    auto.push(n.ifname);
    // cloud-init 22.4 drops the route-metric when metadata configures a single NIC.
    stanzas.push(nics.length > 1 ? `${n.ifname} inet dhcp [metric ${100 * (n.deviceNumber + 1)}]` : `${n.ifname} inet dhcp`);
    for (const ip of n.ips.slice(1)) stanzas.push(`alias ${n.ifname} inet static [address ${ip}/${n.prefixlen}]`);
  }
  return { auto, stanzas };
}

/** Every difference between the snapshot and what `nics` (from metadata) says; [] = equal. */
export function compareState(nics: ExpectedNic[], s: Snapshot, opts: CompareOptions = {}): string[] {
  const base = opts.tableBase ?? 10000;
  const proto = String(opts.protocol ?? 199);
  const d: string[] = [];

  // links: the NICs are there with their MACs (the lab's truth; a mismatch means a broken lab)
  const ethers = s.links.filter((l) => l.link_type === 'ether');
  d.push(...setDiff('link', nics.map((n) => `${n.ifname} ${n.mac}`), ethers.map((l) => `${l.ifname} ${l.address}`)));

  // addresses
  const want: string[] = [];
  for (const n of nics) for (const ip of n.ips) want.push(`${n.ifname} ${ip}/${n.prefixlen}`);
  const got: string[] = [];
  for (const a of s.addrs) {
    if (a.ifname === 'lo') continue;
    for (const i of a.addr_info) if (i.family === 'inet') got.push(`${a.ifname} ${i.local}/${i.prefixlen}`);
  }
  d.push(...setDiff('address', want, got));

  // rendered config
  if (s.eni === null) d.push('ENI: /etc/network/interfaces.d/50-cloud-init missing');
  else {
    try {
      const eni = parseEni(s.eni);
      const exp = expectedEni(nics);
      d.push(...setDiff('ENI auto', exp.auto, eni.auto));
      d.push(...setDiff('ENI stanza', exp.stanzas, eni.stanzas.map(stanzaKey)));
      const dup = eni.auto.filter((a, i) => eni.auto.indexOf(a) !== i);
      if (dup.length) d.push(`ENI: duplicate auto ${dup.join(',')}`);
    } catch (e) {
      d.push(`ENI does not parse: ${(e as Error).message}`);
    }
  }

  // DHCP clients: one per NIC, none for anything else
  const clients = s.procs.filter(isDhcpClient).map((p) => dhcpIface(p) ?? `?pid${p.pid}`);
  d.push(...setDiff('DHCP client', nics.map((n) => n.ifname), new Set(clients)));
  for (const n of nics) {
    const c = clients.filter((x) => x === n.ifname).length;
    if (c > 1) d.push(`DHCP client: ${c} clients for ${n.ifname}`);
  }

  // ifupdown state
  const ifs = ['lo', ...nics.map((n) => n.ifname)];
  d.push(...setDiff('ifstate file', ifs.map((i) => `ifstate.${i}`), Object.keys(s.ifstate).filter((k) => k !== 'ifstate')));
  for (const i of ifs) {
    const c = s.ifstate[`ifstate.${i}`];
    if (c != null && c.trim() !== i) d.push(`ifstate.${i}: content ${JSON.stringify(c)}`);
  }
  const agg = s.ifstate['ifstate'];
  if (agg != null) d.push(...setDiff('ifstate entry', ifs.map((i) => `${i}=${i}`), agg.split('\n').filter(Boolean)));

  // policy routing (ours: protocol 199)
  const isOurs = (p: string | number | undefined) => String(p) === proto;
  const wantRules: string[] = [];
  const wantRoutes: string[] = [];
  for (const n of nics) {
    if (n.deviceNumber === 0) continue;
    const t = base + n.deviceNumber;
    for (const ip of n.ips) wantRules.push(`from ${ip} lookup ${t} priority ${t}`);
    wantRoutes.push(`${n.cidr} dev ${n.ifname} table ${t}`, `default via ${n.gateway} dev ${n.ifname} table ${t}`);
    // Its subnet towards every other NIC's subnet through its table (none when it shares its subnet).
    const others = [...new Set(nics.filter((o) => o !== n).map((o) => o.cidr))];
    if (!others.includes(n.cidr)) for (const c of others) wantRules.push(`from ${n.cidr} to ${c} lookup ${t} priority ${base - 2}`);
  }
  // Ahead of them, main without its default route, while some NIC has a table.
  if (nics.some((n) => n.deviceNumber !== 0)) wantRules.push(`from all lookup main priority ${base - 1} suppress_prefixlength 0`);
  const mainName = (t: unknown) => (String(t) === '254' ? 'main' : String(t));
  const gotRules = s.rules
    .filter((r) => isOurs(r.protocol))
    .map((r) => {
      const x = r as typeof r & { dst?: string; dstlen?: number; suppress_prefixlen?: number };
      const to = x.dst !== undefined ? ` to ${x.dst}/${x.dstlen}` : '';
      const sup = x.suppress_prefixlen !== undefined ? ` suppress_prefixlength ${x.suppress_prefixlen}` : '';
      return `from ${r.src}${r.srclen !== undefined && r.srclen !== 32 ? '/' + r.srclen : ''}${to} lookup ${mainName(r.table)} priority ${r.priority}${sup}`;
    });
  d.push(...setDiff('rule', wantRules, gotRules));
  const gotRoutes = s.routes
    .filter((r) => isOurs(r.protocol))
    .map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev} table ${r.table ?? 'main'}`);
  d.push(...setDiff('route', wantRoutes, gotRoutes));
  // no route of any protocol left in one of our tables for a device that is not its NIC
  for (const r of s.routes) {
    const t = Number(r.table);
    if (!Number.isInteger(t) || t <= base || t > base + 9999) continue;
    const n = nics.find((x) => base + x.deviceNumber === t);
    if (!n || r.dev !== n.ifname) d.push(`route: ${r.dst} dev ${r.dev} in table ${t} that belongs to no present NIC`);
  }
  // main table: one default route per NIC (its DHCP client's)
  const mainDefaults = s.routes.filter((r) => r.dst === 'default' && (r.table === undefined || r.table === 'main')).map((r) => r.dev ?? '?');
  d.push(...setDiff('main default route via', nics.map((n) => n.ifname), new Set(mainDefaults)));

  // our own state files
  const known = parseJson(s.runJson['known-interfaces.json'], d, 'known-interfaces.json') as Record<string, { mac?: string }> | undefined;
  if (known && opts.known !== false) {
    d.push(
      ...setDiff(
        'known interface',
        nics.filter((n) => n.deviceNumber !== 0).map((n) => `${n.ifname} ${n.mac}`),
        Object.entries(known).map(([k, v]) => `${k} ${v?.mac}`),
      ),
    );
  }
  const rs = parseJson(s.runJson['routing-state.json'], d, 'routing-state.json') as { nics?: Record<string, { ifname?: string; table?: number }> } | undefined;
  if (rs?.nics) {
    const wantOwned = nics.filter((n) => n.deviceNumber !== 0).map((n) => `${n.mac} ${n.ifname} ${base + n.deviceNumber}`);
    const gotOwned = Object.entries(rs.nics)
      .filter(([, v]) => v?.table !== 0)
      .map(([mac, v]) => `${mac} ${v?.ifname} ${v?.table}`);
    d.push(...setDiff('routing-state NIC', wantOwned, gotOwned));
  }
  return d;
}

function parseJson(text: string | null | undefined, d: string[], what: string): unknown {
  if (text == null) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    d.push(`${what} does not parse: ${(e as Error).message}`);
    return undefined;
  }
}

/** Files that must always be whole: every JSON file parses, the ENI parses, obj.pkl unpickles. */
export function integrity(s: Snapshot): string[] {
  const d: string[] = [];
  for (const [n, t] of Object.entries(s.runJson)) parseJson(t, d, n);
  if (s.eni !== null) {
    try {
      parseEni(s.eni);
    } catch (e) {
      d.push(`ENI does not parse: ${(e as Error).message}`);
    }
  } else d.push('ENI missing');
  if (!s.objPkl.ok) d.push(`obj.pkl does not load: ${s.objPkl.error}`);
  return d;
}

/** DHCP clients serving an interface that does not exist. */
export function orphanDhcpClients(s: Snapshot): string[] {
  const links = new Set(s.links.map((l) => l.ifname));
  return s.procs.filter(isDhcpClient).filter((p) => !links.has(dhcpIface(p) ?? '')).map((p) => `pid ${p.pid}: ${p.argv.join(' ')}`);
}
