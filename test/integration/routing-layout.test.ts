/**
 * The rule layout against a real kernel: main's more specific routes (local bridges, an operator's
 * route) win over the per-NIC tables for every source, IPv4 and IPv6; main's default route is
 * never chosen for a secondary address; collisions with a user's table are left alone and
 * reported; tables and priorities are freed on detach over 100 attach/detach cycles; `hotplug
 * routes --explain` names the rule and table. Namespaces this test creates and deletes:
 *
 *   chy-<pid>-host  eth0 10.0.0.10/24 fd00:0::10/64 ─── r0 10.0.0.1  chy-<pid>-rtr (router;
 *   ("instance")    eth1 10.0.1.10/24 fd00:1::10/64 ─── r1 10.0.1.1   192.0.2.1 on lo: the
 *                   eth2 10.0.2.10/24               ─── r2 10.0.2.1   operator route's target)
 *                   docker0 172.17.0.1/16 fd17::1/64 ── chy-<pid>-c0 172.17.0.2 fd17::2 (made before)
 *                   br-late 172.18.0.1/16 fd18::1/64 ── chy-<pid>-c1 172.18.0.2 fd18::2 (made after)
 *
 * The routing layer runs directly (reconcile/removeInterface with `ip -n`), not through
 * cloud-init: the attach/detach loop would take minutes through the full path. The full path
 * (cloud-init's refresh reaching the IMDS with secondary NICs present) is routing.test.ts's.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NicMeta } from '../../bridge/index.js';
import { reconcile, snapshot } from '../../src/routing/reconcile.js';
import { removeInterface } from '../../src/routing/cleanup.js';
import type { RoutingEnv } from '../../src/routing/env.js';
import { systemIp } from '../../src/routing/run.js';
import { routesView } from '../../src/commands/routes.js';
import { setQuiet } from '../../src/util/log.js';
import { pingFrom, makeBridge as bridgeIn } from './layout-helpers.js';

const makeBridge = (name: string, ctr: string, v4: string, v6: string) => bridgeIn(HOST, name, ctr, v4, v6);

const P = `chy-${process.pid}`;
const HOST = `${P}-host`;
const RTR = `${P}-rtr`;
const C0 = `${P}-c0`;
const C1 = `${P}-c1`;
const CLI = join(dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const MAC = (i: number) => `02:c8:00:00:00:${(0x10 + i).toString(16)}`;
const config = { enabled: true, table_base: 10000, primary: null };

async function sh(argv: string[]): Promise<string> {
  return (await execa(argv[0]!, argv.slice(1), { stdin: 'ignore', timeout: 20_000 })).stdout;
}
const ipH = (...a: string[]) => sh(['ip', '-n', HOST, ...a]);
const jsonH = async (...a: string[]) => JSON.parse((await ipH('-N', '-json', ...a)) || '[]') as Array<Record<string, unknown>>;

/** `ip route get DST from SRC` in the instance: where the kernel sends it. */
async function routeGet(dst: string, src?: string): Promise<{ dev: string; gateway: string | null; table: string }> {
  const r = (await jsonH(dst.includes(':') ? '-6' : '-4', 'route', 'get', dst, ...(src ? ['from', src] : [])))[0]!;
  return { dev: String(r.dev), gateway: (r.gateway as string | undefined) ?? null, table: String(r.table ?? '254') };
}

const ping = (src: string, dst: string) => pingFrom(HOST, src, dst);

function nic(i: number, o: Partial<NicMeta> = {}): NicMeta {
  return {
    mac: MAC(i),
    device_number: i,
    network_card: 0,
    interface_id: `eni-${i}`,
    ipv4s: [`10.0.${i}.10`, `10.0.${i}.11`],
    ipv6s: [],
    subnet_ipv4_cidr: `10.0.${i}.0/24`,
    subnet_ipv6_cidrs: [],
    ipv4_prefixes: [],
    ipv6_prefixes: [],
    ...o,
  };
}
const NICS: Record<number, NicMeta> = {
  0: nic(0, { ipv6s: ['fd00::10'], subnet_ipv6_cidrs: ['fd00::/64'] }),
  1: nic(1, { ipv4s: ['10.0.1.10', '10.0.1.11', '10.0.1.12'], ipv6s: ['fd00:1::10', 'fd00:1::11'], subnet_ipv6_cidrs: ['fd00:1::/64'] }),
  2: nic(2),
};
const summary = (present: number[], extra: Record<string, NicMeta> = {}) => ({
  primary_mac: MAC(0),
  nics: { ...Object.fromEntries(present.map((i) => [MAC(i), NICS[i] ?? nic(i)])), ...extra },
});
/** Every secondary address of the instance: the primary NIC's secondary IPs and every address of eth1/eth2. */
const SECONDARY4 = ['10.0.0.11', '10.0.1.10', '10.0.1.11', '10.0.1.12', '10.0.2.10', '10.0.2.11'];
const SECONDARY6 = ['fd00:1::10', 'fd00:1::11'];
const TABLE_OF: Record<string, string> = { '10.0.1': '10001', '10.0.2': '10002', 'fd00:1:': '10001' };
const tableOf = (src: string) => TABLE_OF[src.slice(0, 7)] ?? TABLE_OF[src.split('.').slice(0, 3).join('.')];

/** A NIC as DHCP would leave it: veth to the router, its first address, up. */
async function plugNic(i: number, mac = MAC(i)): Promise<void> {
  await ipH('link', 'add', `eth${i}`, 'address', mac, 'type', 'veth', 'peer', 'name', `r${i}`, 'netns', RTR);
  await ipH('addr', 'add', `10.0.${i}.10/24`, 'dev', `eth${i}`);
  await sh(['ip', '-n', RTR, 'addr', 'add', `10.0.${i}.1/24`, 'dev', `r${i}`]);
  await ipH('link', 'set', `eth${i}`, 'up');
  await sh(['ip', '-n', RTR, 'link', 'set', `r${i}`, 'up']);
}

/** Our rules as "family priority from table [suppress]". */
async function ourRules(): Promise<string[]> {
  const out: string[] = [];
  for (const f of ['-4', '-6']) {
    for (const r of await jsonH(f, 'rule', 'show')) {
      if (r.protocol !== '199') continue;
      out.push(`${f} ${r.priority} ${r.src}${r.srclen !== undefined ? `/${r.srclen}` : ''} ${r.table}${r.dst !== undefined ? ` to ${r.dst}/${r.dstlen}` : ''}${r.suppress_prefixlen !== undefined ? ` suppress ${r.suppress_prefixlen}` : ''}`);
    }
  }
  return out.sort();
}

async function hotplugIn(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa('ip', ['netns', 'exec', HOST, process.execPath, CLI, ...args], { reject: false, stdin: 'ignore', timeout: 30_000, env: { HOTPLUG_ROOT: dir } });
  return { exitCode: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

let dir = '';

describe('rule layout on real namespaces (chy-*): main’s specific routes win, collisions reported, tables freed', function () {
  this.timeout(240_000);
  let env: RoutingEnv;
  let created = false;

  before(async function () {
    if (process.getuid?.() !== 0) throw new Error('this suite needs root (network namespaces)');
    setQuiet(true);
    dir = await mkdtemp(join(tmpdir(), 'chy-layout-'));
    await sh(['ip', 'netns', 'add', HOST]);
    created = true;
    await sh(['ip', 'netns', 'add', RTR]);
    for (const ns of [HOST, RTR]) await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    for (const i of [0, 1, 2]) await plugNic(i);
    await ipH('route', 'add', 'default', 'via', '10.0.0.1', 'dev', 'eth0', 'proto', 'dhcp');
    // IPv6 as DHCPv6 and router advertisements leave it: eth0 the primary's default, eth1 a second one.
    await ipH('-6', 'addr', 'add', 'fd00::10/64', 'dev', 'eth0', 'nodad');
    await ipH('-6', 'addr', 'add', 'fd00:1::10/64', 'dev', 'eth1', 'nodad');
    await ipH('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0', 'proto', 'ra', 'metric', '1024');
    await ipH('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth1', 'proto', 'ra', 'metric', '1025');
    // The operator's route and its target (a lab-internal address on the router).
    await sh(['ip', '-n', RTR, 'addr', 'add', '192.0.2.1/32', 'dev', 'lo']);
    await ipH('route', 'add', '192.0.2.0/24', 'via', '10.0.0.1', 'dev', 'eth0');
    // The primary's secondary IP (cloud-init's static alias).
    await ipH('addr', 'add', '10.0.0.11/24', 'dev', 'eth0');
    for (const ns of [HOST, RTR]) await sh(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    await makeBridge('docker0', C0, '172.17.0', 'fd17');
    env = { ip: systemIp({ netns: HOST }), statePath: join(dir, 'routing-state.json') };
  });

  after(async () => {
    if (created) for (const ns of [HOST, RTR, C0, C1]) await execa('ip', ['netns', 'del', ns], { reject: false });
    if (dir) await rm(dir, { recursive: true, force: true });
    setQuiet(false);
  });

  it('reconcile: one `lookup main suppress_prefixlength 0` per family at 9999 ahead of the per-NIC rules; none for the primary; recorded', async () => {
    const r = await reconcile({ summary: summary([0, 1, 2]), config, metadataComplete: true, env });
    expect(r.failed).to.deep.equal([]);
    const rules = await ourRules();
    expect(rules.filter((x) => x.includes('suppress'))).to.deep.equal(['-4 9999 all 254 suppress 0', '-6 9999 all 254 suppress 0']);
    expect(rules.filter((x) => !x.includes('suppress') && !x.startsWith('-4 9998 ') && !x.startsWith('-6 9998 ')).map((x) => x.split(' ').slice(0, 2).join(' '))).to.satisfy((l: string[]) => l.every((p) => p === '-4 10001' || p === '-4 10002' || p === '-6 10001'));
    // Ahead of it, each secondary NIC's subnet towards the other NICs' subnets through its own table.
    expect(rules.filter((x) => / 9998 /.test(x))).to.deep.equal([
      '-4 9998 10.0.1.0/24 10001 to 10.0.0.0/24',
      '-4 9998 10.0.1.0/24 10001 to 10.0.2.0/24',
      '-4 9998 10.0.2.0/24 10002 to 10.0.0.0/24',
      '-4 9998 10.0.2.0/24 10002 to 10.0.1.0/24',
      '-6 9998 fd00:1::/64 10001 to fd00::/64',
    ]);
    expect(rules.some((x) => x.split(' ')[2]!.startsWith('10.0.0.') || x.split(' ')[2]!.startsWith('fd00::'))).to.equal(false);
    const st = JSON.parse(await readFile(env.statePath!, 'utf8'));
    expect(st.mainRules).to.deep.equal(['4 9999', '6 9999']);
    expect(st.nics[MAC(1)]).to.deep.include({ table: 10001, priority: 10001 });
    expect(st.nics[MAC(2)]).to.deep.include({ table: 10002, priority: 10002 });
  });

  it('a bridge made before: every secondary address reaches its subnet through the bridge (route get + ICMP), IPv4 and IPv6', async () => {
    for (const src of SECONDARY4) {
      expect(await routeGet('172.17.0.2', src), src).to.deep.equal({ dev: 'docker0', gateway: null, table: '254' });
      expect(await ping(src, '172.17.0.2'), `ping 172.17.0.2 from ${src}`).to.equal(true);
    }
    for (const src of SECONDARY6) {
      expect(await routeGet('fd17::2', src), src).to.deep.equal({ dev: 'docker0', gateway: null, table: '254' });
      expect(await ping(src, 'fd17::2'), `ping fd17::2 from ${src}`).to.equal(true);
    }
  });

  it('without the main-table rule the NIC tables capture that traffic (the bug); reconcile puts the rule back', async () => {
    await ipH('-4', 'rule', 'del', 'priority', '9999');
    expect(await routeGet('172.17.0.2', '10.0.1.11')).to.deep.equal({ dev: 'eth1', gateway: '10.0.1.1', table: '10001' });
    expect(await ping('10.0.1.11', '172.17.0.2')).to.equal(false);
    const r = await reconcile({ summary: summary([0, 1, 2]), config, metadataComplete: true, env });
    expect(r.changes.map((c) => `${c.kind} ${c.op} ${c.kind === 'rule' ? c.rule.from : ''}`)).to.deep.equal(['rule add all']);
    expect(await ping('10.0.1.11', '172.17.0.2')).to.equal(true);
  });

  it('a bridge made after the NICs were configured: the same, with no reconcile in between', async () => {
    await makeBridge('br-late', C1, '172.18.0', 'fd18');
    for (const src of SECONDARY4) {
      expect(await routeGet('172.18.0.2', src), src).to.deep.equal({ dev: 'br-late', gateway: null, table: '254' });
      expect(await ping(src, '172.18.0.2'), `ping 172.18.0.2 from ${src}`).to.equal(true);
    }
    for (const src of SECONDARY6) {
      expect(await routeGet('fd18::2', src), src).to.deep.equal({ dev: 'br-late', gateway: null, table: '254' });
      expect(await ping(src, 'fd18::2'), `ping fd18::2 from ${src}`).to.equal(true);
    }
    const dry = await reconcile({ summary: summary([0, 1, 2]), config, metadataComplete: true, dryRun: true, env });
    expect(dry.changes).to.deep.equal([]);
  });

  it("an operator's route in main: reachable from the primary's addresses, and the route chosen for every secondary source", async () => {
    for (const src of ['10.0.0.10', '10.0.0.11']) expect(await ping(src, '192.0.2.1'), `ping 192.0.2.1 from ${src}`).to.equal(true);
    for (const src of [...SECONDARY4, undefined]) expect(await routeGet('192.0.2.1', src), String(src)).to.deep.equal({ dev: 'eth0', gateway: '10.0.0.1', table: '254' });
  });

  it("to another NIC's subnet a secondary address goes by its own NIC (the router's strict reverse-path filter shows it), not by main's route", async () => {
    await sh(['ip', 'netns', 'exec', RTR, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=1']);
    try {
      // 10.0.0.1 is the router's address in eth0's subnet: a peer there, as the cloud's check sees it.
      for (const src of ['10.0.1.10', '10.0.1.11', '10.0.2.11']) {
        const n = src.split('.')[2];
        expect(await routeGet('10.0.0.1', src), src).to.deep.equal({ dev: `eth${n}`, gateway: `10.0.${n}.1`, table: `1000${n}` });
        expect(await ping(src, '10.0.0.1'), `ping 10.0.0.1 from ${src}`).to.equal(true);
      }
      expect(await routeGet('10.0.2.1', '10.0.1.11')).to.deep.equal({ dev: 'eth1', gateway: '10.0.1.1', table: '10001' });
      expect(await routeGet('10.0.0.1', '10.0.0.11')).to.deep.equal({ dev: 'eth0', gateway: null, table: '254' });
      // Without those rules main's subnet route would send it out of eth0, and the strict router drops it.
      await ipH('rule', 'del', 'priority', '9998', 'from', '10.0.1.0/24', 'to', '10.0.0.0/24');
      expect(await routeGet('10.0.0.1', '10.0.1.11')).to.deep.equal({ dev: 'eth0', gateway: null, table: '254' });
      expect(await ping('10.0.1.11', '10.0.0.1')).to.equal(false);
      await reconcile({ summary: summary([0, 1, 2]), config, metadataComplete: true, env });
      expect(await ping('10.0.1.11', '10.0.0.1')).to.equal(true);
    } finally {
      await sh(['ip', 'netns', 'exec', RTR, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0']);
    }
  });

  it("main's default route is never chosen for a secondary address; the IMDS and link-local: main without a source, the NIC's table from its addresses", async () => {
    for (const dst of ['203.0.113.9', '169.254.169.254', '169.254.1.1']) {
      for (const src of SECONDARY4.filter((s) => !s.startsWith('10.0.0.'))) {
        const nicIdx = src.split('.')[2];
        expect(await routeGet(dst, src), `${dst} from ${src}`).to.deep.equal({ dev: `eth${nicIdx}`, gateway: `10.0.${nicIdx}.1`, table: tableOf(src) });
      }
      // The primary's addresses and a socket with no source (cloud-init's IMDS client): main's default.
      for (const src of ['10.0.0.10', '10.0.0.11', undefined]) expect(await routeGet(dst, src), `${dst} from ${src}`).to.deep.equal({ dev: 'eth0', gateway: '10.0.0.1', table: '254' });
    }
    for (const src of SECONDARY6) expect(await routeGet('2001:db8::1', src), src).to.deep.equal({ dev: 'eth1', gateway: 'fe80::1', table: '10001' });
    expect(await routeGet('2001:db8::1')).to.deep.include({ dev: 'eth0', table: '254' });
    expect(await routeGet('2001:db8::1', 'fd00::10')).to.deep.include({ dev: 'eth0', table: '254' });
  });

  it('hotplug routes --explain DEST [--from SRC] [--json]: the rule, table and route; one-line errors', async () => {
    const j = async (args: string[]) => {
      const r = await hotplugIn(['routes', '--explain', ...args, '--json']);
      expect(r.exitCode, r.stderr).to.equal(0);
      return JSON.parse(r.stdout) as { rule: { priority: number; table: number; ours: boolean; text: string }; table: number; route: Record<string, string>; passed: { rule: { priority: number }; why: string }[] };
    };
    const bridge = await j(['172.17.0.2', '--from', '10.0.1.11']);
    expect(bridge.rule).to.include({ priority: 9999, table: 254, ours: true, text: 'from all lookup main suppress_prefixlength 0' });
    expect(bridge.route).to.deep.include({ dst: '172.17.0.0/16', dev: 'docker0' });
    const out = await j(['203.0.113.9', '--from', '10.0.1.11']);
    expect(out.rule).to.include({ priority: 10001, table: 10001, ours: true, text: 'from 10.0.1.11 lookup 10001' });
    expect(out.route).to.deep.include({ dst: 'default', gateway: '10.0.1.1', dev: 'eth1' });
    expect(out.passed.map((p) => p.rule.priority)).to.deep.equal([0, 9999]);
    expect(out.passed[1]!.why).to.match(/suppressed/);
    const v6 = await j(['2001:db8::1', '--from', 'fd00:1::11']);
    expect(v6.rule).to.include({ priority: 10001, table: 10001 });
    const nosrc = await j(['169.254.169.254']);
    expect(nosrc.rule).to.include({ priority: 32766, table: 254, ours: false });
    expect(nosrc.route).to.deep.include({ dst: 'default', dev: 'eth0', prefsrc: '10.0.0.10' });
    const text = await hotplugIn(['routes', '--explain', '172.18.0.2', '--from', '10.0.2.11']);
    expect(text.stdout).to.include('rule:  9999: from all lookup main suppress_prefixlength 0 (ours, protocol 199)').and.include('route: 172.18.0.0/16 dev br-late');
    for (const bad of [['300.1.1.1'], ['10.0.0.1', '--from', 'nope'], ['10.0.0.1', '--from', 'fd00:1::11']]) {
      const r = await hotplugIn(['routes', '--explain', ...bad]);
      expect(r.exitCode, bad.join(' ')).to.not.equal(0);
      expect(r.stderr.trim().split('\n'), bad.join(' ')).to.have.length(1);
      expect(r.stdout).to.equal('');
    }
  });

  it("a user's table on our number: the NIC is left alone and the collision reported (view, --json); freed once the user's route goes", async () => {
    await plugNic(3);
    await ipH('route', 'add', '198.51.100.0/24', 'via', '10.0.0.1', 'dev', 'eth0', 'table', '10003');
    const r = await reconcile({ summary: summary([0, 1, 2, 3]), config, metadataComplete: true, env });
    // Nothing for eth3 or in its table (the other NICs do get their cross-subnet rules towards its subnet).
    expect(r.changes.filter((c) => c.ifname === 'eth3' || (c.kind === 'rule' && c.rule.table === 10003) || (c.kind === 'route' && c.route.table === 10003))).to.deep.equal([]);
    expect((await ourRules()).some((x) => x.includes(' 10003'))).to.equal(false);
    expect(await jsonH('-4', 'route', 'show', 'table', '10003')).to.deep.equal([{ dst: '198.51.100.0/24', gateway: '10.0.0.1', dev: 'eth0', flags: [] }]);
    const st = JSON.parse(await readFile(env.statePath!, 'utf8'));
    expect(st.nics[MAC(3)], 'the NIC that collides is not recorded as owning the table').to.equal(undefined);
    const s = await snapshot({ summary: summary([0, 1, 2, 3]), config, metadataComplete: true, env });
    const v = routesView(s, true);
    expect((v.json.collisions as { kind: string; number: number; ifname: string }[]).map((c) => [c.kind, c.number, c.ifname])).to.deep.equal([['table', 10003, 'eth3']]);
    expect(v.text).to.match(/collisions .*:\n {2}table 10003: 198\.51\.100\.0\/24 via 10\.0\.0\.1 dev eth0 table 10003: table 10003 already has a foreign route/);
    await ipH('route', 'del', '198.51.100.0/24', 'table', '10003');
    const again = await reconcile({ summary: summary([0, 1, 2, 3]), config, metadataComplete: true, env });
    expect(again.failed).to.deep.equal([]);
    expect((await ourRules()).filter((x) => x.includes(' 10003'))).to.deep.equal([
      '-4 10003 10.0.3.10 10003',
      '-4 10003 10.0.3.11 10003',
      '-4 9998 10.0.3.0/24 10003 to 10.0.0.0/24',
      '-4 9998 10.0.3.0/24 10003 to 10.0.1.0/24',
      '-4 9998 10.0.3.0/24 10003 to 10.0.2.0/24',
    ]);
    await ipH('link', 'del', 'eth3');
    expect((await removeInterface('eth3', { env })).failed).to.deep.equal([]);
  });

  it('100 attach/detach cycles (a new MAC each time): tables, priorities, rules and the state file end as they began', async () => {
    const before = { rules: await ourRules(), tables: await jsonH('-4', 'route', 'show', 'table', 'all'), state: JSON.parse(await readFile(env.statePath!, 'utf8')) };
    for (let k = 0; k < 100; k++) {
      const mac = `02:c9:00:00:${(k >> 8).toString(16).padStart(2, '0')}:${(k & 0xff).toString(16).padStart(2, '0')}`;
      await plugNic(5, mac);
      const r = await reconcile({ summary: summary([0, 1, 2], { [mac]: nic(5, { mac }) }), config, metadataComplete: true, env });
      expect(r.failed, `cycle ${k}`).to.deep.equal([]);
      // Its two sources, its rules towards the three other subnets, the other two NICs' towards its own.
      const rules = r.changes.filter((c) => c.kind === 'rule').map((c) => c.kind === 'rule' && `${c.rule.from}${c.rule.to ? ` > ${c.rule.to}` : ''} ${c.rule.priority}`);
      expect(rules.sort(), `cycle ${k}`).to.deep.equal(
        ['10.0.1.0/24 > 10.0.5.0/24 9998', '10.0.2.0/24 > 10.0.5.0/24 9998', '10.0.5.0/24 > 10.0.0.0/24 9998', '10.0.5.0/24 > 10.0.1.0/24 9998', '10.0.5.0/24 > 10.0.2.0/24 9998', '10.0.5.10/32 10005', '10.0.5.11/32 10005'].sort(),
      );
      await ipH('link', 'del', 'eth5');
      const d = await removeInterface('eth5', { env });
      expect(d.failed, `cycle ${k}`).to.deep.equal([]);
    }
    expect(await ourRules()).to.deep.equal(before.rules);
    expect(await jsonH('-4', 'route', 'show', 'table', 'all')).to.deep.equal(before.tables);
    const st = JSON.parse(await readFile(env.statePath!, 'utf8'));
    expect(Object.keys(st.nics).sort()).to.deep.equal(Object.keys(before.state.nics).sort());
    expect(st.mainRules).to.deep.equal(before.state.mainRules);
  });

  it('the last NIC with a table detached: the main-table rules go too (IPv4 and IPv6); nothing of ours is left', async () => {
    await ipH('link', 'del', 'eth2');
    await removeInterface('eth2', { env });
    expect((await ourRules()).filter((x) => x.includes('suppress'))).to.have.length(2); // eth1 still has a table
    await ipH('link', 'del', 'eth1');
    const r = await removeInterface('eth1', { env });
    expect(r.failed).to.deep.equal([]);
    expect(await ourRules()).to.deep.equal([]);
    const st = JSON.parse(await readFile(env.statePath!, 'utf8'));
    expect(st.mainRules).to.deep.equal([]);
    expect(Object.values(st.nics as Record<string, { table: number }>).filter((n) => n.table !== 0)).to.deep.equal([]);
    // Bridges keep working from the primary's addresses.
    expect(await ping('10.0.0.11', '172.17.0.2')).to.equal(true);
  });
});
