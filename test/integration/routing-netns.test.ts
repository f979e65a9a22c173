/**
 * Policy routing against a real kernel, in namespaces this test creates and deletes:
 *
 *   chr-<pid>-host  eth0 10.0.0.10/24 ─── r0 10.0.0.1/24  chr-<pid>-rtr
 *   ("instance")    eth1 10.0.1.10/24 ─── r1 10.0.1.1/24  (router + client 192.168.50.1 on lo,
 *                   eth2 10.0.2.10/24 ─── r2 10.0.2.1/24   rp_filter=1: drops a packet arriving
 *                   default via 10.0.0.1 dev eth0          on a link its source does not route by)
 *
 * Runs the real reconcile()/removeInterface() with `ip -n chr-<pid>-host`, checks the result
 * with `ip -json`, and sends UDP from the router to a secondary IP on eth2 to show that the
 * reply leaves by eth2 only once the rules exist. Nothing outside the two namespaces is touched.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NicMeta } from '../../bridge/index.js';
import { reconcile } from '../../src/routing/reconcile.js';
import { removeInterface, flushOwned } from '../../src/routing/cleanup.js';
import type { RoutingEnv } from '../../src/routing/env.js';
import { dhclientLeaseGateway } from '../../src/stack/dhclient-lease.js';
import { systemIp } from '../../src/routing/run.js';
import { setQuiet } from '../../src/util/log.js';

const HOST = `chr-${process.pid}-host`;
const RTR = `chr-${process.pid}-rtr`;
const MACS = ['02:c7:00:00:00:10', '02:c7:00:00:00:11', '02:c7:00:00:00:12'];
const [MAC0, MAC1, MAC2] = MACS as [string, string, string];
const CLIENT = '192.168.50.1';

async function sh(argv: string[], input?: string): Promise<string> {
  const r = await execa(argv[0]!, argv.slice(1), { input, stdin: input === undefined ? 'ignore' : undefined, timeout: 20_000 });
  return r.stdout;
}
const ipH = (...a: string[]) => sh(['ip', '-n', HOST, ...a]);
const ipR = (...a: string[]) => sh(['ip', '-n', RTR, ...a]);
const jsonH = async (...a: string[]) => JSON.parse((await ipH('-json', ...a)) || '[]') as Array<Record<string, unknown>>;

function nic(mac: string, i: number, o: Partial<NicMeta> = {}): NicMeta {
  return {
    mac,
    device_number: i,
    network_card: 0,
    interface_id: `eni-${i}`,
    ipv4s: [`10.0.${i}.10`, `10.0.${i}.11`, `10.0.${i}.12`],
    ipv6s: [],
    subnet_ipv4_cidr: `10.0.${i}.0/24`,
    subnet_ipv6_cidrs: [],
    ipv4_prefixes: [],
    ipv6_prefixes: [],
    ...o,
  };
}
const metadata = (o: Record<string, Partial<NicMeta>> = {}) => ({
  primary_mac: MAC0,
  nics: Object.fromEntries(
    MACS.map((m, i) => [
      m,
      nic(m, i, {
        ...(i === 0 ? { ipv4s: ['10.0.0.10'] } : {}),
        ...(i === 1 ? { ipv4_prefixes: ['10.0.1.64/28'], ipv6s: ['fd00:1::10', 'fd00:1::11'], subnet_ipv6_cidrs: ['fd00:1::/64'] } : {}),
        ...o[m],
      }),
    ]),
  ),
});
const config = { enabled: true, table_base: 10000, primary: null };

const SERVER_JS = `
const s = require('dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(7777, process.argv[1], () => console.log('ready'));`;
const CLIENT_JS = `
const [src, dst, ms] = process.argv.slice(1);
const s = require('dgram').createSocket('udp4');
const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, Number(ms));
s.on('message', () => { clearTimeout(t); console.log('reply'); process.exit(0); });
s.bind(0, src, () => s.send('ping', 7777, dst));`;

/** UDP from the router's client address to `dst` (on the host); whether a reply came back. */
async function udpEcho(dst: string): Promise<boolean> {
  const server = execa('ip', ['netns', 'exec', HOST, process.execPath, '-e', SERVER_JS, dst], { stdin: 'ignore', reject: false });
  try {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve, reject) => {
      server.stdout!.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
      server.on('exit', () => reject(new Error('echo server exited before it was ready')));
      timer = setTimeout(() => reject(new Error('echo server not ready')), 10_000);
    }).finally(() => clearTimeout(timer));
    const out = await sh(['ip', 'netns', 'exec', RTR, process.execPath, '-e', CLIENT_JS, CLIENT, dst, '1500']);
    return out.trim() === 'reply';
  } finally {
    server.kill('SIGTERM');
    await server.catch(() => {});
  }
}

/** Packets with source port 7777 the router has seen arrive on r0 and r2. */
async function replyCounters(): Promise<{ r0: number; r2: number }> {
  const j = JSON.parse(await sh(['ip', 'netns', 'exec', RTR, 'nft', '-j', 'list', 'counters'])) as { nftables: Array<{ counter?: { name: string; packets: number } }> };
  const get = (n: string) => j.nftables.find((x) => x.counter?.name === n)?.counter?.packets ?? 0;
  return { r0: get('via_r0'), r2: get('via_r2') };
}

/** eth1's IPv6 as DHCPv6 and a router advertisement would leave it. */
async function v6Up(): Promise<void> {
  await ipH('-6', 'addr', 'add', 'fd00:1::10/64', 'dev', 'eth1', 'nodad');
  await ipH('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth1', 'proto', 'ra');
}

describe('routing against real namespaces (chr-*-host / chr-*-rtr)', function () {
  this.timeout(60_000);
  let dir: string;
  let env: RoutingEnv;
  let created = false;
  let mainBefore = '';

  before(async function () {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) this.skip();
    setQuiet(true);
    dir = await mkdtemp(join(tmpdir(), 'chr-routing-netns-'));
    await sh(['ip', 'netns', 'add', HOST]);
    created = true;
    await sh(['ip', 'netns', 'add', RTR]);
    for (const ns of [HOST, RTR]) await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    for (let i = 0; i < 3; i++) {
      await ipH('link', 'add', `eth${i}`, 'address', MACS[i]!, 'type', 'veth', 'peer', 'name', `r${i}`, 'netns', RTR);
      await ipH('addr', 'add', `10.0.${i}.10/24`, 'dev', `eth${i}`);
      await ipR('addr', 'add', `10.0.${i}.1/24`, 'dev', `r${i}`);
      await ipH('link', 'set', `eth${i}`, 'up');
      await ipR('link', 'set', `r${i}`, 'up');
    }
    await ipH('route', 'add', 'default', 'via', '10.0.0.1', 'dev', 'eth0', 'proto', 'dhcp');
    await ipR('addr', 'add', `${CLIENT}/32`, 'dev', 'lo');
    // Host: accept what arrives (as a cloud VM's default would); router: strict reverse-path filter.
    for (const k of ['all', 'default', 'eth0', 'eth1', 'eth2']) await sh(['ip', 'netns', 'exec', HOST, 'sysctl', '-qw', `net.ipv4.conf.${k}.rp_filter=0`]);
    for (const k of ['all', 'default', 'r0', 'r1', 'r2']) await sh(['ip', 'netns', 'exec', RTR, 'sysctl', '-qw', `net.ipv4.conf.${k}.rp_filter=1`]);
    // ARP from the interface's own address: with the default (the packet's source, 10.0.2.x on
    // eth0) the router's rp_filter would drop the ARP request itself and no reply would ever leave.
    await sh(['ip', 'netns', 'exec', HOST, 'sysctl', '-qw', 'net.ipv4.conf.all.arp_announce=2']);
    await sh(
      ['ip', 'netns', 'exec', RTR, 'nft', '-f', '-'],
      `table inet chr {
        counter via_r0 { }
        counter via_r2 { }
        chain pre {
          type filter hook prerouting priority -300; policy accept;
          iifname "r0" udp sport 7777 counter name "via_r0"
          iifname "r2" udp sport 7777 counter name "via_r2"
        }
      }\n`,
    );
    // eth1 has a dhclient lease naming its router; eth2 has none (the subnet's first host is used).
    await writeFile(join(dir, 'dhclient.eth1.leases'), 'lease {\n  interface "eth1";\n  fixed-address 10.0.1.10;\n  option routers 10.0.1.1;\n}\n');
    env = { ip: systemIp({ netns: HOST }), statePath: join(dir, 'routing-state.json'), leaseGateway: (n) => dhclientLeaseGateway(n, { leaseDir: dir }) };
    // A user's own policy, which must survive everything below.
    await ipH('rule', 'add', 'from', '10.0.1.11', 'lookup', '100', 'priority', '500');
    await ipH('route', 'add', '192.168.99.0/24', 'via', '10.0.1.1', 'dev', 'eth1', 'table', '100');
    // cloud-init's renderer (say) already put one secondary address on eth2.
    await ipH('addr', 'add', '10.0.2.11/24', 'dev', 'eth2');
    await v6Up();
    mainBefore = await ipH('-json', 'route', 'show', 'table', 'main');
  });

  after(async () => {
    if (created) {
      for (const ns of [HOST, RTR]) await execa('ip', ['netns', 'del', ns], { reject: false });
    }
    if (dir) await rm(dir, { recursive: true, force: true });
    setQuiet(false);
  });

  it('without policy rules, the reply from a secondary IP on eth2 leaves by eth0 and is dropped', async () => {
    const c0 = await replyCounters();
    expect(await udpEcho('10.0.2.11')).to.equal(false);
    const c1 = await replyCounters();
    expect(c1.r0).to.be.greaterThan(c0.r0);
    expect(c1.r2).to.equal(c0.r2);
  });

  it('reconcile adds tables, rules and secondary addresses for eth1/eth2 and nothing for eth0', async () => {
    const r = await reconcile({ summary: metadata(), config, metadataComplete: true, env });
    expect(r.failed).to.deep.equal([]);
    const rules = await jsonH('-N', '-4', 'rule', 'show');
    const ours = rules.filter((x) => x.protocol === '199' && x.suppress_prefixlen === undefined && x.dst === undefined).map((x) => `${x.src}${x.srclen ? `/${x.srclen}` : ''} ${x.table} ${x.priority}`);
    // Ahead of them: each NIC's subnet towards the others' through its own table, then main without
    // its default route (a more specific route there wins).
    expect(rules.filter((x) => x.protocol === '199' && x.dst !== undefined).map((x) => `${x.src}/${x.srclen} ${x.dst}/${x.dstlen} ${x.table} ${x.priority}`).sort()).to.deep.equal(
      ['10.0.1.0/24 10.0.0.0/24 10001 9998', '10.0.1.0/24 10.0.2.0/24 10001 9998', '10.0.2.0/24 10.0.0.0/24 10002 9998', '10.0.2.0/24 10.0.1.0/24 10002 9998'],
    );
    expect(rules.filter((x) => x.protocol === '199' && x.suppress_prefixlen !== undefined)).to.deep.equal([{ priority: 9999, src: 'all', table: '254', suppress_prefixlen: 0, protocol: '199' }]);
    expect(ours.sort()).to.deep.equal(
      ['10.0.1.10 10001 10001', '10.0.1.11 10001 10001', '10.0.1.12 10001 10001', '10.0.1.64/28 10001 10001', '10.0.2.10 10002 10002', '10.0.2.11 10002 10002', '10.0.2.12 10002 10002'].sort(),
    );
    expect(rules.some((x) => String(x.src).startsWith('10.0.0.'))).to.equal(false);
    const t1 = await jsonH('-N', 'route', 'show', 'table', '10001');
    expect(t1.map((x) => [x.dst, x.gateway ?? null, x.dev, x.protocol])).to.have.deep.members([
      ['default', '10.0.1.1', 'eth1', '199'],
      ['10.0.1.0/24', null, 'eth1', '199'],
    ]);
    const t2 = await jsonH('-N', 'route', 'show', 'table', '10002');
    expect(t2.find((x) => x.dst === 'default')).to.include({ gateway: '10.0.2.1', dev: 'eth2', protocol: '199' });
    const addrs = (await jsonH('addr', 'show')).flatMap((l) => ((l.addr_info as Array<Record<string, unknown>>) ?? []).filter((a) => a.family === 'inet').map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`));
    expect(addrs).to.include.members(['eth1 10.0.1.11/24', 'eth1 10.0.1.12/24', 'eth2 10.0.2.11/24', 'eth2 10.0.2.12/24']);
    expect(addrs.filter((a) => a.startsWith('eth0 '))).to.deep.equal(['eth0 10.0.0.10/24']);
    expect(await ipH('-json', 'route', 'show', 'table', 'main')).to.equal(mainBefore);
    const st = JSON.parse(await readFile(join(dir, 'routing-state.json'), 'utf8'));
    // 10.0.2.11 was there before us but metadata assigns it to this NIC: adopted, so it goes
    // when metadata drops it (a stale cloud-init alias would otherwise stay forever).
    expect(st.nics[MAC2].addresses).to.have.deep.members([
      { family: 4, address: '10.0.2.11', prefixlen: 24 },
      { family: 4, address: '10.0.2.12', prefixlen: 24 },
    ]);
    expect(st.nics[MAC1]).to.deep.include({ ifname: 'eth1', table: 10001 });
    expect(st.nics[MAC0]).to.equal(undefined);
    // IPv6 on eth1: rules for both addresses, the subnet and RA-router routes, the second address.
    const rules6 = (await jsonH('-N', '-6', 'rule', 'show')).filter((x) => x.protocol === '199').map((x) => `${x.src} ${x.table}`);
    expect(rules6.sort()).to.deep.equal(['all 254', 'fd00:1::10 10001', 'fd00:1::11 10001']);
    const t6 = await jsonH('-N', '-6', 'route', 'show', 'table', '10001');
    expect(t6.map((x) => [x.dst, x.gateway ?? null, x.protocol])).to.have.deep.members([
      ['fd00:1::/64', null, '199'],
      ['default', 'fe80::1', '199'],
    ]);
    const a6 = ((await jsonH('-6', 'addr', 'show', 'dev', 'eth1'))[0]!.addr_info as Array<Record<string, unknown>>).map((a) => `${a.local}/${a.prefixlen}`);
    expect(a6).to.include.members(['fd00:1::10/64', 'fd00:1::11/64']);
    expect(st.nics[MAC1].addresses).to.deep.include({ family: 6, address: 'fd00:1::11', prefixlen: 64 });
  });

  it('now the reply leaves by eth2 and reaches the router', async () => {
    for (const dst of ['10.0.2.11', '10.0.2.12']) {
      const c0 = await replyCounters();
      expect(await udpEcho(dst), dst).to.equal(true);
      const c1 = await replyCounters();
      expect(c1.r2, dst).to.be.greaterThan(c0.r2);
      expect(c1.r0, dst).to.equal(c0.r0);
    }
  });

  it('a second reconcile plans zero changes', async () => {
    const dry = await reconcile({ summary: metadata(), config, metadataComplete: true, dryRun: true, env });
    expect(dry.changes).to.deep.equal([]);
    const again = await reconcile({ summary: metadata(), config, metadataComplete: true, env });
    expect(again.changes).to.deep.equal([]);
  });

  it('an IP leaving metadata removes only its rule and address; foreign rules survive', async () => {
    await ipH('rule', 'add', 'from', '10.0.1.99', 'lookup', '10001', 'priority', '10001'); // by hand, in our table
    const r = await reconcile({ summary: metadata({ [MAC1]: { ipv4s: ['10.0.1.10', '10.0.1.11'] } }), config, metadataComplete: true, env });
    expect(r.changes.map((c) => `${c.kind} ${c.op}`)).to.deep.equal(['rule del', 'address del']);
    const rules = await jsonH('-N', '-4', 'rule', 'show');
    expect(rules.some((x) => x.src === '10.0.1.12')).to.equal(false);
    expect(rules.find((x) => x.src === '10.0.1.99')).to.include({ table: '10001', priority: 10001 });
    expect(rules.find((x) => x.src === '10.0.1.11' && x.priority === 500)).to.include({ table: '100' });
    const eth1 = (await jsonH('addr', 'show', 'dev', 'eth1'))[0]!.addr_info as Array<Record<string, unknown>>;
    expect(eth1.map((a) => a.local)).to.not.include('10.0.1.12');
  });

  it('with metadataComplete=false nothing is deleted, whatever the metadata says', async () => {
    const r = await reconcile({ summary: metadata({ [MAC1]: { ipv4s: [] }, [MAC2]: { ipv4s: ['10.0.2.10'] } }), config, metadataComplete: false, env });
    expect(r.changes.filter((c) => c.op === 'del')).to.deep.equal([]);
    const rules = await jsonH('-N', '-4', 'rule', 'show');
    expect(rules.filter((x) => x.protocol === '199').length).to.equal(11); // 6 per-NIC rules, 4 cross-subnet rules and the main-table rule
  });

  it('after eth1 goes down and up (the kernel drops its routes and IPv6 addresses) reconcile puts them back', async () => {
    await ipH('link', 'set', 'eth1', 'down');
    await ipH('link', 'set', 'eth1', 'up');
    expect(await jsonH('-N', 'route', 'show', 'table', '10001')).to.deep.equal([]);
    await v6Up();
    const r = await reconcile({ summary: metadata({ [MAC1]: { ipv4s: ['10.0.1.10', '10.0.1.11'] } }), config, metadataComplete: true, env });
    expect(r.failed).to.deep.equal([]);
    expect(r.changes.map((c) => `${c.kind} ${c.op} ${c.kind === 'route' ? c.route.family : ''}`.trim())).to.deep.equal(['address add', 'route add 4', 'route add 6', 'route add 4', 'route add 6']);
    expect((await jsonH('-N', 'route', 'show', 'table', '10001')).length).to.equal(2);
    expect((await jsonH('-N', '-6', 'route', 'show', 'table', '10001')).length).to.equal(2);
    const again = await reconcile({ summary: metadata({ [MAC1]: { ipv4s: ['10.0.1.10', '10.0.1.11'] } }), config, metadataComplete: true, env });
    expect(again.changes).to.deep.equal([]);
  });

  it('removeInterface(eth2) with the device still there leaves nothing of ours for it', async () => {
    // A hand-made twin of one of our rules (same selector, table and priority; no protocol).
    await ipH('rule', 'add', 'from', '10.0.2.12', 'lookup', '10002', 'priority', '10002');
    const r = await removeInterface('eth2', { env });
    expect(r.failed).to.deep.equal([]);
    expect((await jsonH('-N', '-4', 'rule', 'show')).filter((x) => x.table === '10002')).to.deep.equal([{ priority: 10002, src: '10.0.2.12', table: '10002' }]);
    expect(await jsonH('-N', 'route', 'show', 'table', '10002')).to.deep.equal([]);
    const eth2 = ((await jsonH('addr', 'show', 'dev', 'eth2'))[0]!.addr_info as Array<Record<string, unknown>>).filter((a) => a.family === 'inet').map((a) => a.local);
    expect(eth2).to.deep.equal(['10.0.2.10']); // DHCP's stays; 10.0.2.11 was adopted (metadata assigned it)
    const st = JSON.parse(await readFile(join(dir, 'routing-state.json'), 'utf8'));
    expect(st.nics[MAC2]).to.equal(undefined);
  });

  it('removeInterface(eth1) after the device is gone removes its rules; foreign ones survive', async () => {
    await ipH('link', 'del', 'eth1');
    const r = await removeInterface('eth1', { env });
    expect(r.failed).to.deep.equal([]);
    const rules = await jsonH('-N', '-4', 'rule', 'show');
    expect(rules.filter((x) => x.protocol === '199')).to.deep.equal([]);
    expect((await jsonH('-N', '-6', 'rule', 'show')).filter((x) => x.protocol === '199')).to.deep.equal([]);
    expect(rules.find((x) => x.src === '10.0.1.99')).to.include({ table: '10001' });
    expect(rules.find((x) => x.src === '10.0.1.11' && x.priority === 500)).to.include({ table: '100' });
    expect(JSON.parse(await readFile(join(dir, 'routing-state.json'), 'utf8')).nics).to.deep.equal({});
    // And a reconcile afterwards has nothing to do for the departed NIC.
    const again = await reconcile({ summary: metadata(), config, metadataComplete: true, env });
    expect(again.changes.filter((c) => c.mac === MAC1)).to.deep.equal([]);
  });
  it('routing.enabled turning false (and uninstall) removes every rule and route of ours; addresses and foreign rules stay', async () => {
    await reconcile({ summary: metadata(), config, metadataComplete: true, env });
    const ours = (await jsonH('-N', '-4', 'rule', 'show')).filter((x) => x.protocol === '199');
    expect(ours.length, 'rules of ours before').to.be.greaterThan(0);
    const dry = await reconcile({ summary: metadata(), config: { ...config, enabled: false }, metadataComplete: true, dryRun: true, env });
    expect(dry.changes.length, 'dry run lists the removals').to.be.greaterThan(0);
    expect((await jsonH('-N', '-4', 'rule', 'show')).filter((x) => x.protocol === '199').length, 'dry run changed nothing').to.equal(ours.length);
    const r = await reconcile({ summary: metadata(), config: { ...config, enabled: false }, metadataComplete: true, env });
    expect(r.enabled).to.equal(false);
    expect(r.failed).to.deep.equal([]);
    for (const fam of ['-4', '-6']) {
      expect((await jsonH('-N', fam, 'rule', 'show')).filter((x) => x.protocol === '199'), `${fam} rules of ours left`).to.deep.equal([]);
      expect((await jsonH('-N', fam, 'route', 'show', 'table', 'all')).filter((x) => x.protocol === '199'), `${fam} routes of ours left`).to.deep.equal([]);
    }
    const rules = await jsonH('-N', '-4', 'rule', 'show');
    expect(rules.find((x) => x.src === '10.0.1.11' && x.priority === 500), 'foreign rule').to.include({ table: '100' });
    const eth2 = ((await jsonH('addr', 'show', 'dev', 'eth2'))[0]!.addr_info as Array<Record<string, unknown>>).filter((a) => a.family === 'inet').map((a) => a.local);
    expect(eth2, 'secondary IPs stay').to.include.members(['10.0.2.10', '10.0.2.11', '10.0.2.12']);
    expect(JSON.parse(await readFile(join(dir, 'routing-state.json'), 'utf8')).nics).to.deep.equal({});
    const again = await flushOwned({ env });
    expect(again.changes, 'a second flush has nothing to do').to.deep.equal([]);
  });
});
