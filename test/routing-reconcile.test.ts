/**
 * reconcile(), removeInterface(), flushOwned(), the routes view and applyPlan over a fake `ip` on an
 * in-memory system: what runs, what is recorded, what a second run does (no root needed).
 */
import { expect } from 'chai';
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Change } from '../src/routing/change.js';
import { applyPlan } from '../src/routing/apply.js';
import { reconcile, snapshot } from '../src/routing/reconcile.js';
import { removeInterface, flushOwned } from '../src/routing/cleanup.js';
import { dhclientLeaseGateway } from '../src/stack/dhclient-lease.js';
import { ROUTING_PROTO } from '../src/routing/state.js';
import { systemIp, type IpRunner } from '../src/routing/run.js';
import { execa } from 'execa';
import { routesView, previewRoutes } from '../src/commands/routes.js';
import { defaultConfig } from '../src/config.js';
import { setQuiet } from '../src/util/log.js';
import { MAC0, MAC1, MAC2, nic, baseNics, baseLinks } from './helpers/routing-fixtures.js';

// ---------------------------------------------------------------------------------------
// A fake `ip` over an in-memory system, for reconcile()/removeInterface() without root.

interface FakeSys {
  links: Array<{ ifname: string; mac: string; up: boolean }>;
  addrs: Array<{ dev: string; family: 4 | 6; address: string; prefixlen: number }>;
  rules: Array<{ family: 4 | 6; priority: number; from: string; to?: string; table: number; protocol: number; suppress?: number }>;
  routes: Array<{ family: 4 | 6; table: number; dst: string; gateway?: string; dev: string; protocol: number }>;
  log: string[][];
}

function fakeIp(sys: FakeSys): IpRunner {
  const ok = (stdout = '') => ({ exitCode: 0, stdout, stderr: '' });
  const fail = (stderr: string) => ({ exitCode: 2, stdout: '', stderr });
  return async (argv) => {
    const args = argv.filter((a) => a !== '-N' && a !== '-json');
    const family = (args[0] === '-6' ? 6 : 4) as 4 | 6;
    const a = args[0] === '-4' || args[0] === '-6' ? args.slice(1) : args;
    if (a[0] === 'addr' && a[1] === 'show') {
      return ok(JSON.stringify(sys.links.map((l) => ({ ifname: l.ifname, address: l.mac, flags: l.up ? ['UP'] : [], addr_info: sys.addrs.filter((x) => x.dev === l.ifname).map((x) => ({ family: x.family === 4 ? 'inet' : 'inet6', local: x.address, prefixlen: x.prefixlen })) }))));
    }
    if (a[0] === 'rule' && a[1] === 'show') {
      const rs = [{ priority: 0, src: 'all', table: '255' }, ...sys.rules.filter((r) => r.family === family).map((r) => {
        const [src, len] = r.from.split('/');
        const sel = r.from === 'all' ? {} : Number(len) === (family === 4 ? 32 : 128) ? {} : { srclen: Number(len) };
        const to = r.to ? { dst: r.to.split('/')[0], dstlen: Number(r.to.split('/')[1]) } : {};
        return { priority: r.priority, src, ...sel, ...to, table: String(r.table), ...(r.suppress !== undefined ? { suppress_prefixlen: r.suppress } : {}), ...(r.protocol ? { protocol: String(r.protocol) } : {}) };
      }), { priority: 32766, src: 'all', table: '254' }];
      return ok(JSON.stringify(rs));
    }
    if (a[0] === 'route' && a[1] === 'show') {
      return ok(JSON.stringify(sys.routes.filter((r) => r.family === family).map((r) => ({ dst: r.dst, ...(r.gateway ? { gateway: r.gateway } : {}), dev: r.dev, ...(r.table === 254 ? {} : { table: String(r.table) }), protocol: String(r.protocol), flags: [] }))));
    }
    sys.log.push([...argv]);
    const opt = (k: string) => a[a.indexOf(k) + 1]!;
    if (a[0] === 'rule') {
      const r = { family, priority: Number(opt('priority')), from: opt('from'), ...(a.includes('to') ? { to: opt('to') } : {}), table: Number(opt('lookup')), protocol: Number(opt('protocol')), ...(a.includes('suppress_prefixlength') ? { suppress: Number(opt('suppress_prefixlength')) } : {}) };
      const i = sys.rules.findIndex((x) => x.family === r.family && x.priority === r.priority && x.from === r.from && x.table === r.table && x.protocol === r.protocol && x.suppress === r.suppress && x.to === r.to);
      if (a[1] === 'add') return i >= 0 ? fail('RTNETLINK answers: File exists') : (sys.rules.push(r), ok());
      return i < 0 ? fail('RTNETLINK answers: No such file or directory') : (sys.rules.splice(i, 1), ok());
    }
    if (a[0] === 'route') {
      const dev = opt('dev');
      if (!sys.links.some((l) => l.ifname === dev)) return { exitCode: 1, stdout: '', stderr: `Cannot find device "${dev}"` };
      const r = { family, table: Number(opt('table')), dst: a[2]!, gateway: a.includes('via') ? opt('via') : undefined, dev, protocol: Number(opt('proto')) };
      const i = sys.routes.findIndex((x) => x.family === r.family && x.table === r.table && x.dst === r.dst);
      if (a[1] === 'add') return i >= 0 ? fail('RTNETLINK answers: File exists') : (sys.routes.push(r), ok());
      if (a[1] === 'replace') return (i >= 0 ? sys.routes.splice(i, 1, r) : sys.routes.push(r), ok());
      return i < 0 ? fail('RTNETLINK answers: No such process') : (sys.routes.splice(i, 1), ok());
    }
    if (a[0] === 'addr') {
      const [address, len] = a[2]!.split('/');
      const x = { dev: opt('dev'), family, address: address!, prefixlen: Number(len) };
      const i = sys.addrs.findIndex((y) => y.dev === x.dev && y.address === x.address && y.prefixlen === x.prefixlen);
      if (a[1] === 'add') return i >= 0 ? fail('RTNETLINK answers: File exists') : (sys.addrs.push(x), ok());
      return i < 0 ? fail('RTNETLINK answers: Cannot assign requested address') : (sys.addrs.splice(i, 1), ok());
    }
    return fail(`fake ip: unsupported ${argv.join(' ')}`);
  };
}

describe('routing/reconcile() with an injected ip runner', () => {
  let dir: string;
  let sys: FakeSys;
  const summary = () => ({ nics: baseNics(), primary_mac: MAC0 });
  const config = { enabled: true, table_base: 10000, primary: null };
  const env = () => ({ ip: fakeIp(sys), statePath: join(dir, 'routing-state.json'), leaseGateway: (n: string) => dhclientLeaseGateway(n, { leaseDir: dir }) });

  before(() => setQuiet(true));
  after(() => setQuiet(false));
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chr-routing-'));
    sys = {
      links: baseLinks(),
      addrs: [0, 1, 2].map((i) => ({ dev: `eth${i}`, family: 4 as const, address: `10.0.${i}.10`, prefixlen: 24 })),
      rules: [{ family: 4, priority: 500, from: '10.0.2.11/32', table: 100, protocol: 0 }],
      routes: [{ family: 4, table: 254, dst: 'default', gateway: '10.0.0.1', dev: 'eth0', protocol: 16 }],
      log: [],
    };
    await writeFile(join(dir, 'dhclient.eth2.leases'), 'lease {\n  interface "eth2";\n  option routers 10.0.2.254;\n}\n');
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('applies, records ownership, and a second run changes nothing', async () => {
    const r1 = await reconcile({ summary: summary(), config, metadataComplete: true, env: env() });
    expect(r1.failed).to.deep.equal([]);
    expect(r1.applied.length).to.equal(20); // 4 addresses, 4 routes, 7 per-NIC rules, 4 cross-subnet rules, the main-table rule
    expect(sys.rules).to.deep.include({ family: 4, priority: 9999, from: 'all', table: 254, protocol: 199, suppress: 0 });
    expect(sys.routes.find((r) => r.table === 10002 && r.dst === 'default')?.gateway).to.equal('10.0.2.254');
    const st = JSON.parse(await readFile(join(dir, 'routing-state.json'), 'utf8'));
    expect(st).to.deep.include({ version: 1, protocol: 199 });
    expect(st.nics[MAC2].addresses).to.deep.equal([{ family: 4, address: '10.0.2.11', prefixlen: 24 }, { family: 4, address: '10.0.2.12', prefixlen: 24 }]);
    const n = sys.log.length;
    const r2 = await reconcile({ summary: summary(), config, metadataComplete: true, env: env() });
    expect(r2.changes).to.deep.equal([]);
    expect(sys.log.length).to.equal(n);
    expect(sys.rules).to.deep.include({ family: 4, priority: 500, from: '10.0.2.11/32', table: 100, protocol: 0 });
  });

  it('dry run and disabled change nothing', async () => {
    const r = await reconcile({ summary: summary(), config, metadataComplete: true, dryRun: true, env: env() });
    expect(r.changes.length).to.equal(20);
    const off = await reconcile({ summary: summary(), config: { ...config, enabled: false }, metadataComplete: true, env: env() });
    expect(off.changes).to.deep.equal([]);
    expect(sys.log).to.deep.equal([]);
  });

  it('removeInterface removes exactly the NIC’s rules, routes and recorded addresses', async () => {
    await reconcile({ summary: summary(), config, metadataComplete: true, env: env() });
    sys.addrs.push({ dev: 'eth2', family: 4, address: '10.0.2.99', prefixlen: 24 }); // someone else's
    const r = await removeInterface('eth2', { env: env() });
    expect(r.failed).to.deep.equal([]);
    expect(sys.rules.filter((x) => x.table === 10002)).to.deep.equal([]);
    expect(sys.routes.filter((x) => x.table === 10002)).to.deep.equal([]);
    expect(sys.addrs.filter((x) => x.dev === 'eth2').map((x) => x.address)).to.deep.equal(['10.0.2.10', '10.0.2.99']);
    expect(sys.rules.filter((x) => x.table === 10001).length).to.equal(5); // its cross-subnet rule towards eth2 went too
    const st = JSON.parse(await readFile(join(dir, 'routing-state.json'), 'utf8'));
    expect(Object.keys(st.nics)).to.deep.equal([MAC1]);
  });

  it('without a lease source: a main-table default route through the NIC, else the subnet’s first host', async () => {
    sys.routes.push({ family: 4, table: 254, dst: 'default', gateway: '10.0.1.9', dev: 'eth1', protocol: 16 });
    const r = await reconcile({ summary: summary(), config, metadataComplete: true, env: { ...env(), leaseGateway: undefined } });
    expect(r.failed).to.deep.equal([]);
    expect(sys.routes.find((x) => x.table === 10001 && x.dst === 'default')?.gateway).to.equal('10.0.1.9');
    expect(sys.routes.find((x) => x.table === 10002 && x.dst === 'default')?.gateway).to.equal('10.0.2.1');
  });

  it('removeInterface with a table number reused by another present NIC: only the removed NIC’s recorded sources and device go', async () => {
    await reconcile({ summary: summary(), config, metadataComplete: true, env: env() });
    const MAC3 = '02:00:00:00:00:13';
    sys.links.push({ ifname: 'eth3', mac: MAC3, up: true });
    sys.rules.push({ family: 4, priority: 10002, from: '10.0.3.10/32', table: 10002, protocol: ROUTING_PROTO });
    sys.routes.push({ family: 4, table: 10002, dst: '10.0.3.0/24', dev: 'eth3', protocol: ROUTING_PROTO });
    const path = join(dir, 'routing-state.json');
    const st = JSON.parse(await readFile(path, 'utf8'));
    st.nics[MAC3] = { ifname: 'eth3', table: 10002, rules: ['4 10.0.3.10/32'], addresses: [], updated: st.nics[MAC2].updated };
    await writeFile(path, JSON.stringify(st));
    const n = sys.log.length;
    const dry = await removeInterface('eth2', { env: env(), dryRun: true });
    expect(sys.log.length).to.equal(n);
    // Its sources, its cross-subnet rules, and eth1's cross-subnet rule towards its subnet.
    expect(dry.changes.filter((c) => c.kind === 'rule').map((c) => c.kind === 'rule' && c.rule.from)).to.deep.equal(['10.0.2.10/32', '10.0.2.11/32', '10.0.2.12/32', '10.0.2.0/24', '10.0.2.0/24', '10.0.1.0/24']);
    expect(dry.changes.every((c) => c.mac === MAC2 && c.reason === 'interface removed')).to.equal(true);
    const r = await removeInterface('eth2', { env: env() });
    expect(r.failed).to.deep.equal([]);
    expect(r.changes).to.deep.equal(dry.changes);
    expect(sys.rules.filter((x) => x.table === 10002)).to.deep.equal([{ family: 4, priority: 10002, from: '10.0.3.10/32', table: 10002, protocol: ROUTING_PROTO }]);
    expect(sys.routes.filter((x) => x.table === 10002)).to.deep.equal([{ family: 4, table: 10002, dst: '10.0.3.0/24', dev: 'eth3', protocol: ROUTING_PROTO }]);
    expect(Object.keys(JSON.parse(await readFile(path, 'utf8')).nics).sort()).to.deep.equal([MAC1, MAC3]);
  });

  it('flushOwned removes every rule and route of ours (attributed by table), rules first; addresses and foreign rules stay', async () => {
    await reconcile({ summary: summary(), config, metadataComplete: true, env: env() });
    const addrs = JSON.stringify(sys.addrs);
    const ours = { rules: sys.rules.filter((x) => x.protocol === ROUTING_PROTO).length, routes: sys.routes.filter((x) => x.protocol === ROUTING_PROTO).length };
    const n = sys.log.length;
    const dry = await flushOwned({ env: env(), dryRun: true });
    expect(sys.log.length).to.equal(n);
    const kinds = dry.changes.map((c) => c.kind);
    expect({ rules: kinds.filter((k) => k === 'rule').length, routes: kinds.filter((k) => k === 'route').length }).to.deep.equal(ours);
    expect(kinds.lastIndexOf('rule')).to.be.lessThan(kinds.indexOf('route'));
    expect(dry.changes.every((c) => c.op === 'del' && c.reason === 'policy routing removed')).to.equal(true);
    expect(dry.changes.map((c) => (c.kind === 'rule' ? [c.rule.table, c.mac] : c.kind === 'route' ? [c.route.table, c.mac] : []))).to.deep.include.members([
      [10001, MAC1],
      [10002, MAC2],
    ]);
    const r = await flushOwned({ env: env() });
    expect(r.failed).to.deep.equal([]);
    expect(r.changes).to.deep.equal(dry.changes);
    expect(sys.rules).to.deep.equal([{ family: 4, priority: 500, from: '10.0.2.11/32', table: 100, protocol: 0 }]);
    expect(sys.routes).to.deep.equal([{ family: 4, table: 254, dst: 'default', gateway: '10.0.0.1', dev: 'eth0', protocol: 16 }]);
    expect(JSON.stringify(sys.addrs)).to.equal(addrs);
    expect(JSON.parse(await readFile(join(dir, 'routing-state.json'), 'utf8')).nics).to.deep.equal({});
  });

  it('routes view and the apply --dry-run preview', async () => {
    const pre = await previewRoutes(summary(), { ...defaultConfig, routing: config }, env());
    expect(pre.lines[0]).to.equal('ip -4 addr add 10.0.1.11/24 dev eth1 noprefixroute');
    expect(pre.lines).to.include('ip -4 route add default via 10.0.2.254 dev eth2 table 10002 proto 199');
    await reconcile({ summary: { nics: { ...baseNics(), [MAC1]: nic(MAC1, 1, { ipv4s: ['10.0.1.10', '10.0.1.11', '10.0.1.12', '10.0.1.13'] }) }, primary_mac: MAC0 }, config, metadataComplete: true, env: env() });
    const v = routesView(await snapshot({ summary: summary(), config, metadataComplete: true, env: env() }), true);
    expect(v.text).to.include('primary: eth0 02:00:00:00:00:10 (metadata; main table, no rules)');
    expect(v.text).to.include('  - from 10.0.1.13/32 lookup 10001 priority 10001   # to remove: no longer in metadata');
    expect(v.text).to.include('  + from 10.0.1.64/28 lookup 10001 priority 10001');
    expect(v.text).to.include('  ~ from 10.0.2.11/32 lookup 100 priority 500');
    expect(v.text).to.include('    10.0.2.11/24 dev eth2');
    expect(v.text).to.match(/3 change\(s\) pending/);
    expect((v.json.pending as unknown[]).length).to.equal(3);
    expect(sys.log.length).to.equal(21); // the reconcile's; the preview and the view ran none
  });

  it('applyPlan: failures are reported and do not stop the rest; EEXIST/ENOENT are not failures', async () => {
    const cs: Change[] = [
      { kind: 'route', op: 'add', route: { family: 4, table: 10009, dst: 'default', gateway: '10.0.9.1', dev: 'eth9' }, mac: null, ifname: 'eth9', reason: 'test' },
      { kind: 'rule', op: 'del', rule: { family: 4, from: '10.0.9.9/32', table: 10009, priority: 10009 }, mac: null, ifname: null, reason: 'test' },
      { kind: 'rule', op: 'add', rule: { family: 4, from: '10.0.9.9/32', table: 10009, priority: 10009 }, mac: null, ifname: null, reason: 'test' },
    ];
    const r = await applyPlan(cs, fakeIp(sys));
    expect(r.map((x) => x.status)).to.deep.equal(['failed', 'gone', 'ok']);
    expect(r[0]!.error).to.match(/Cannot find device/);
  });

  it('applyPlan with the real ip in a scratch namespace: one -batch per family, each line judged as one ip run would be', async () => {
    const ns = `hp-batch-${process.pid}`;
    await execa('ip', ['netns', 'add', ns]);
    try {
      const ip = systemIp({ netns: ns });
      const batches: string[][][] = [];
      const counted = Object.assign((a: readonly string[]) => ip(a), {
        batch: (f: '-4' | '-6', lines: string[][]) => (batches.push(lines), ip.batch(f, lines)),
      });
      const rule = (op: 'add' | 'del', from: string): Change => ({ kind: 'rule', op, rule: { family: 4, from, table: 10009, priority: 10009 }, mac: null, ifname: null, reason: 'test' });
      const cs: Change[] = [
        rule('del', '10.0.9.8/32'),
        { kind: 'route', op: 'add', route: { family: 4, table: 10009, dst: 'default', gateway: '10.0.9.1', dev: 'eth9' }, mac: null, ifname: 'eth9', reason: 'test' },
        { kind: 'address', op: 'add', address: { family: 4, address: '10.0.9.9', prefixlen: 24, dev: 'lo' }, mac: null, ifname: 'lo', reason: 'test' },
        rule('add', '10.0.9.9/32'),
        rule('add', '10.0.9.9/32'),
      ];
      const r = await applyPlan(cs, counted);
      expect(batches, 'one batch (IPv4 only)').to.have.length(1);
      expect(batches[0]).to.have.length(5);
      expect(r.map((x) => x.status)).to.deep.equal(['gone', 'failed', 'ok', 'ok', 'exists']);
      expect(r[1]!.error).to.match(/Cannot find device "eth9"/);
      const rules = JSON.parse((await execa('ip', ['-n', ns, '-json', 'rule', 'show'])).stdout) as { src?: string; table?: string }[];
      expect(rules.filter((x) => x.src === '10.0.9.9').map((x) => x.table)).to.deep.equal(['10009']);
    } finally {
      await execa('ip', ['netns', 'del', ns], { reject: false });
    }
  });
});
