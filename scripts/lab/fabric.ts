/**
 * The VPC fabric around the instance, as a real cloud has it:
 *
 *  - a client host (netns chl-NAME-client, eth0 10.0.9.10/24, default via 10.0.9.1) behind the
 *    cloud netns's router, to reach the instance's addresses from outside their subnets;
 *  - the source/destination check: a packet that leaves an instance NIC with an IPv4 or IPv6
 *    source outside that NIC's subnet is dropped by the cloud (IPv6 link-local and unspecified
 *    sources pass: neighbour discovery, router solicitations and DHCPv6 use them). An nftables `bridge` table in the cloud
 *    netns sees every frame entering a subnet bridge from a NIC's cloud-side veth end (vifN);
 *    each vif is listed in the set of its subnet (ports_brK). Every source seen is counted per
 *    (vif, source address) in the dynamic sets `passed` and `dropped`, and drops in the counter
 *    `drops`, so tests can tell which NIC a reply left through.
 *
 * Everything here runs inside the lab's namespaces (nsenter --net); argv only.
 */
import { run, ipBatch, type RunResult } from './run.js';
import { netnsPath } from './netns.js';
import { allSubnets, subnetInfo, CLIENT_ADDR, CLIENT_CIDR, CLIENT_GATEWAY, CLIENT_LINK, CLIENT_ADDR6, CLIENT_CIDR6, CLIENT_GATEWAY6 } from './paths.js';

export const SRCCHECK_TABLE = 'srccheck';

const inNet = (ns: string, argv: string[]) => ['nsenter', `--net=${netnsPath(ns)}`, '--', ...argv];
const VIF_RE = /^vif[0-9]{1,6}$/;

function checkVif(vif: string): string {
  if (!VIF_RE.test(vif)) throw new Error(`invalid vif name ${JSON.stringify(vif)}`);
  return vif;
}

/** The nftables ruleset of the source/destination check (constant: derived from the lab's subnets). */
export function srcCheckRuleset(): string {
  const subnets = allSubnets();
  const l: string[] = [`table bridge ${SRCCHECK_TABLE} {`];
  for (const s of subnets) l.push(`  set ports_${s.bridge} { type ifname; }`);
  l.push('  set passed { type ifname . ipv4_addr; size 65535; flags dynamic; counter; }');
  l.push('  set dropped { type ifname . ipv4_addr; size 65535; flags dynamic; counter; }');
  l.push('  set passed6 { type ifname . ipv6_addr; size 65535; flags dynamic; counter; }');
  l.push('  set dropped6 { type ifname . ipv6_addr; size 65535; flags dynamic; counter; }');
  l.push('  counter drops { }');
  l.push('  chain prerouting {');
  l.push('    type filter hook prerouting priority 0; policy accept;');
  l.push('    ether type != { ip, ip6 } accept');
  // DHCP before the NIC has an address.
  l.push('    ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept');
  for (const s of subnets) l.push(`    iifname @ports_${s.bridge} ip saddr ${s.cidr} add @passed { iifname . ip saddr } accept`);
  for (const s of subnets) l.push(`    iifname @ports_${s.bridge} ip saddr 0.0.0.0/0 add @dropped { iifname . ip saddr } counter name "drops" drop`);
  l.push('    ip6 saddr { ::, fe80::/10 } accept');
  for (const s of subnets) l.push(`    iifname @ports_${s.bridge} ip6 saddr ${s.cidr6} add @passed6 { iifname . ip6 saddr } accept`);
  for (const s of subnets) l.push(`    iifname @ports_${s.bridge} ip6 saddr ::/0 add @dropped6 { iifname . ip6 saddr } counter name "drops" drop`);
  l.push('  }');
  l.push('}');
  return l.join('\n') + '\n';
}

async function nft(ns: string, script: string, check = true): Promise<RunResult> {
  return run(inNet(ns, ['nft', '-f', '-']), { input: script, check, timeoutMs: 15_000 });
}

export async function setupSourceCheck(cloudNs: string): Promise<void> {
  await nft(cloudNs, srcCheckRuleset());
}

/** Put NIC ports under the check of their subnet (before they come up). */
export async function srcCheckAddPorts(cloudNs: string, ports: { vif: string; subnet: number }[]): Promise<void> {
  if (!ports.length) return;
  const lines = ports.map((p) => `add element bridge ${SRCCHECK_TABLE} ports_${subnetInfo(p.subnet).bridge} { "${checkVif(p.vif)}" }`);
  await nft(cloudNs, lines.join('\n') + '\n');
}

export async function srcCheckDelPort(cloudNs: string, port: { vif: string; subnet: number }): Promise<void> {
  await nft(cloudNs, `delete element bridge ${SRCCHECK_TABLE} ports_${subnetInfo(port.subnet).bridge} { "${checkVif(port.vif)}" }\n`, false);
}

export interface FlowCount {
  /** Cloud-side veth end the packets came from. */
  vif: string;
  /** Source address (IPv4 or IPv6). */
  saddr: string;
  packets: number;
  bytes: number;
}

export interface SrcCheckCounters {
  /** False when the lab has no source check (created by an older lab). */
  present: boolean;
  /** Packets dropped: a source address outside the sending NIC's subnet. */
  drops: number;
  passed: FlowCount[];
  dropped: FlowCount[];
  /** vif → subnet index of the ports under the check. */
  ports: Record<string, number>;
}

type Obj = Record<string, unknown>;

function flows(set: Obj | undefined): FlowCount[] {
  const out: FlowCount[] = [];
  for (const e of (set?.elem as unknown[] | undefined) ?? []) {
    const el = (e as Obj).elem as Obj | undefined;
    const concat = ((el?.val as Obj | undefined)?.concat as unknown[] | undefined) ?? [];
    const counter = (el?.counter as Obj | undefined) ?? {};
    if (concat.length !== 2) continue;
    out.push({ vif: String(concat[0]), saddr: String(concat[1]), packets: Number(counter.packets ?? 0), bytes: Number(counter.bytes ?? 0) });
  }
  return out.sort((a, b) => a.vif.localeCompare(b.vif) || a.saddr.localeCompare(b.saddr));
}

export async function readSourceCheck(cloudNs: string): Promise<SrcCheckCounters> {
  const r = await run(inNet(cloudNs, ['nft', '-j', 'list', 'table', 'bridge', SRCCHECK_TABLE]), { check: false, timeoutMs: 15_000 });
  if (r.exitCode !== 0) return { present: false, drops: 0, passed: [], dropped: [], ports: {} };
  const doc = JSON.parse(r.stdout) as { nftables?: Obj[] };
  const items = doc.nftables ?? [];
  const sets = new Map<string, Obj>();
  let drops = 0;
  for (const it of items) {
    if (it.set) sets.set(String((it.set as Obj).name), it.set as Obj);
    if (it.counter && (it.counter as Obj).name === 'drops') drops = Number((it.counter as Obj).packets ?? 0);
  }
  const ports: Record<string, number> = {};
  for (const s of allSubnets()) {
    for (const e of (sets.get(`ports_${s.bridge}`)?.elem as unknown[] | undefined) ?? []) if (typeof e === 'string') ports[e] = s.index;
  }
  const both = (a: string) => [...flows(sets.get(a)), ...flows(sets.get(`${a}6`))];
  return { present: true, drops, passed: both('passed'), dropped: both('dropped'), ports };
}

/** Zero the counters (the port lists stay). */
export async function resetSourceCheck(cloudNs: string): Promise<void> {
  const sets = ['passed', 'dropped', 'passed6', 'dropped6'].map((x) => `flush set bridge ${SRCCHECK_TABLE} ${x}`);
  await nft(cloudNs, [...sets, `reset counter bridge ${SRCCHECK_TABLE} drops`].join('\n') + '\n');
}

// ---------------------------------------------------------------------------------------------
// The client host

/** client0 (cloud netns, the client network's gateway) ↔ eth0 (client netns), default via the cloud (IPv4 and IPv6). */
export async function setupClient(cloudNs: string, clientNs: string): Promise<void> {
  const len = CLIENT_CIDR.split('/')[1];
  await ipBatch(cloudNs, [
    `link add ${CLIENT_LINK} type veth peer name eth0 netns ${clientNs}`,
    `addr add ${CLIENT_GATEWAY}/${len} dev ${CLIENT_LINK}`,
    `addr add ${CLIENT_GATEWAY6}/64 dev ${CLIENT_LINK} nodad`,
    `link set ${CLIENT_LINK} up`,
  ]);
  await ipBatch(clientNs, [
    'link set lo up',
    `addr add ${CLIENT_ADDR}/${len} dev eth0`,
    `addr add ${CLIENT_ADDR6}/${CLIENT_CIDR6.split('/')[1]} dev eth0 nodad`,
    'link set eth0 up',
    `route add default via ${CLIENT_GATEWAY}`,
    `route add ::/0 via ${CLIENT_GATEWAY6}`,
  ]);
}

/** argv that runs `argv` in the client netns. */
export const clientArgv = (clientNs: string, argv: string[]): string[] => inNet(clientNs, argv);

/** ICMP echo with a raw socket (no ping binary needed); prints {"sent":N,"received":M}. Data are argv. */
export const PING_PY = `
import json, os, select, socket, struct, sys, time
dst, count, wait_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
if len(sys.argv) > 4: s.bind((sys.argv[4], 0))  # a source address of its own (the VM tier's client)
ident = os.getpid() & 0xffff
def csum(b):
    if len(b) % 2: b += b'\\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    t += t >> 16
    return ~t & 0xffff
got = 0
for seq in range(1, count + 1):
    body = b'cloud-hotplug-lab'
    hdr = struct.pack('!BBHHH', 8, 0, 0, ident, seq)
    s.sendto(struct.pack('!BBHHH', 8, 0, csum(hdr + body), ident, seq) + body, (dst, 0))
    end = time.monotonic() + wait_ms / 1000
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        data, addr = s.recvfrom(4096)
        ihl = (data[0] & 0xf) * 4
        t, _, _, i, q = struct.unpack('!BBHHH', data[ihl:ihl + 8])
        if t == 0 and i == ident and q == seq and addr[0] == dst:
            got += 1
            break
print(json.dumps({'sent': count, 'received': got}))
`;

/** TCP connect; prints {"ok":true,"data":...} with what the server sent until it closed, or {"ok":false,"error":...}. */
export const TCP_JS = `
const [host, port, ms] = process.argv.slice(1);
const out = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
const s = require('node:net').connect({ host, port: Number(port) });
let data = '';
const t = setTimeout(() => out({ ok: false, error: 'timeout', data }), Number(ms));
s.setEncoding('utf8');
s.on('data', (d) => { data += d; });
s.on('end', () => { clearTimeout(t); out({ ok: true, data }); });
s.on('error', (e) => { clearTimeout(t); out({ ok: false, error: e.code || String(e), data }); });
`;
