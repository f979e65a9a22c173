/**
 * The rule layout for IPv6 in the lab (`up --ipv6`: router advertisements and DHCPv6 from the
 * cloud, EC2's `ipv6s` and `subnet-ipv6-cidr-blocks`), with real cloud-init (its `inet6 dhcp` and
 * static secondary addresses) and real udev events: a hot-added NIC with two IPv6 addresses, each
 * reachable from a client in another subnet past the cloud's IPv6 source check; docker0-like
 * bridges with ULA subnets made before and after; an operator's IPv6 route in main; cloud-init's
 * refresh adding an address; the IPv6 suppress rule living exactly as long as some NIC's table.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { lab, hotplug, waitFor, labFixture, waitRecord } from './helpers.js';
import { pingFrom, makeBridge } from './layout-helpers.js';

const NAME = 't-rl6';
const P = lab.labPaths(NAME);
const INST = P.netnsInst;
const C0 = `chy-${process.pid}-6c0`;
const C1 = `chy-${process.pid}-6c1`;
const OPERATOR_NET = 'fd99::/64'; // behind docker0's container: lab-internal
const OPERATOR_TARGET = 'fd99::1';

type Obj = Record<string, unknown>;
const ipj = async (...a: string[]) => JSON.parse((await execa('ip', ['-n', INST, '-N', '-json', ...a])).stdout || '[]') as Obj[];
const ours6 = async () => (await ipj('-6', 'rule', 'show')).filter((r) => r.protocol === '199');
async function routeGet(dst: string, src: string): Promise<{ dev: string; gateway: string | null; table: string }> {
  const r = (await ipj('-6', 'route', 'get', dst, 'from', src))[0]!;
  return { dev: String(r.dev), gateway: (r.gateway as string | undefined) ?? null, table: String(r.table ?? '254') };
}
/** The RA's router on `dev`: the gateway of main's `default … proto ra` through it. */
async function raRouter(dev: string): Promise<string | undefined> {
  return (await ipj('-6', 'route', 'show', 'default', 'dev', dev)).find((r) => r.protocol === '9')?.gateway as string | undefined;
}
/** Global IPv6 addresses of an interface, usable (DAD done). */
async function v6Addrs(dev: string): Promise<string[]> {
  const l = (await ipj('-6', 'addr', 'show', 'dev', dev)).flatMap((x) => (x.addr_info as Obj[] | undefined) ?? []);
  return l.filter((a) => a.scope === '0' && !a.tentative).map((a) => String(a.local));
}
/** Echo from the client host (CLIENT_ADDR6, another subnet) to `dst`: the reply must come back. */
const fromClient = (dst: string) => pingFrom(P.netnsClient, lab.CLIENT_ADDR6, dst);

describe('IPv6 rule layout in the lab (real cloud-init, RA + DHCPv6): reachability, bridges, an operator route, refresh, removal', function () {
  this.timeout(300_000);
  const fx = labFixture(NAME, { install: true, ipv6: true, config: 'retry:\n  budget_seconds: 6\n' });
  let eth0v6: string;
  let eth1: lab.NicInfo;
  let router1: string;

  before(async function () {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root');
    await fx.boot();
    // eth0 took its DHCPv6 address at boot (cloud-init rendered `inet6 dhcp` from its ipv6s).
    const e0 = (await lab.showMetadata({ name: NAME })).model.nics.find((n) => n.ifname === 'eth0')!;
    eth0v6 = e0.ipv6s![0]!;
    await waitFor('eth0 DHCPv6 address and RA route', async () => (await v6Addrs('eth0')).includes(eth0v6) && !!(await raRouter('eth0')));
    await makeBridge(INST, 'docker0', C0, '172.17.0', 'fd17');
  });

  after(async () => {
    for (const ns of [C0, C1]) await execa('ip', ['netns', 'del', ns], { reject: false });
    await fx.teardown();
    expect(await lab.leftovers(NAME)).to.deep.equal([]);
  });

  it("a hot-added NIC with two IPv6 addresses: cloud-init's DHCPv6 and static address, its IPv6 table via the RA's router, the rules in order", async () => {
    eth1 = await lab.attach({ name: NAME, subnet: 2, ipv6s: 2 });
    expect(eth1.ipv6s).to.have.length(2);
    await waitRecord(NAME, (r) => r.mac === eth1.mac && r.action === 'add');
    await waitFor('eth1 IPv6 addresses, rules and table', async () => {
      const have = await v6Addrs(eth1.ifname);
      const rules = await ours6();
      const table = await ipj('-6', 'route', 'show', 'table', '10001');
      return eth1.ipv6s!.every((a) => have.includes(a) && rules.some((r) => r.src === a)) && table.some((r) => r.dst === 'default');
    });
    router1 = (await raRouter(eth1.ifname))!;
    expect(router1, 'RA router on eth1').to.match(/^fe80:/);
    const table = (await ipj('-6', 'route', 'show', 'table', '10001')).map((r) => ({ dst: r.dst, gateway: r.gateway ?? null, dev: r.dev, protocol: r.protocol }));
    expect(table).to.have.deep.members([
      { dst: eth1.cidr6, gateway: null, dev: eth1.ifname, protocol: '199' },
      { dst: 'default', gateway: router1, dev: eth1.ifname, protocol: '199' },
    ]);
    const sub0 = lab.subnetInfo(1).cidr6.split('/');
    const sub1 = eth1.cidr6!.split('/');
    const rules = await ours6();
    expect(rules.slice(0, 2)).to.deep.equal([
      { priority: 9998, src: sub1[0], srclen: Number(sub1[1]), dst: sub0[0], dstlen: Number(sub0[1]), table: '10001', protocol: '199' },
      { priority: 9999, src: 'all', table: '254', suppress_prefixlen: 0, protocol: '199' },
    ]);
    expect(rules.slice(2).map((r) => [r.priority, r.src, r.table])).to.have.deep.members(eth1.ipv6s!.map((a) => [10001, a, '10001']));
  });

  it('every IPv6 address answers the client in another subnet, each reply leaving by its own NIC past the source check', async () => {
    await lab.resetSourceCheck({ name: NAME });
    for (const a of [eth0v6, ...eth1.ipv6s!]) expect(await fromClient(a), `ping ${a} from the client`).to.equal(true);
    const sc = await lab.sourceCheck({ name: NAME });
    expect(sc.drops, JSON.stringify(sc.dropped)).to.equal(0);
    expect(sc.passed.filter((f) => f.saddr === eth0v6).map((f) => f.ifname)).to.deep.equal(['eth0']);
    for (const a of eth1.ipv6s!) expect(sc.passed.filter((f) => f.saddr === a).map((f) => f.ifname), a).to.deep.equal([eth1.ifname]);
  });

  it('the IPv6 source check is real: a reply forced out of eth0 with an eth1 source is dropped by the cloud', async () => {
    // A host route in main beats eth1's table (the suppress rule lets it through), as a careless operator's would.
    const via = `${lab.CLIENT_ADDR6}/128`;
    await execa('ip', ['-n', INST, '-6', 'route', 'add', via, 'via', (await raRouter('eth0'))!, 'dev', 'eth0']);
    try {
      await lab.resetSourceCheck({ name: NAME });
      expect(await fromClient(eth1.ipv6s![0]!)).to.equal(false);
      const sc = await lab.sourceCheck({ name: NAME });
      expect(sc.dropped.filter((f) => f.saddr === eth1.ipv6s![0]).map((f) => f.ifname)).to.deep.equal(['eth0']);
    } finally {
      await execa('ip', ['-n', INST, '-6', 'route', 'del', via]);
    }
    expect(await fromClient(eth1.ipv6s![0]!)).to.equal(true);
  });

  it("to a host in eth0's IPv6 subnet (the cloud's router address) every eth1 address goes by eth1's table; the source check passes it", async () => {
    const host = lab.subnetInfo(1).gateway6;
    await lab.resetSourceCheck({ name: NAME });
    for (const a of eth1.ipv6s!) {
      expect(await routeGet(host, a), a).to.deep.equal({ dev: eth1.ifname, gateway: router1, table: '10001' });
      expect(await pingFrom(INST, a, host), `ping ${host} from ${a}`).to.equal(true);
    }
    const sc = await lab.sourceCheck({ name: NAME });
    expect(sc.drops, JSON.stringify(sc.dropped)).to.equal(0);
    for (const a of eth1.ipv6s!) expect(sc.passed.filter((f) => f.saddr === a).map((f) => f.ifname), a).to.deep.equal([eth1.ifname]);
  });

  it('a bridge made before and one made after: every secondary IPv6 address reaches its container through the bridge', async () => {
    await makeBridge(INST, 'br-late', C1, '172.18.0', 'fd18');
    for (const [dev, ctr] of [['docker0', 'fd17::2'], ['br-late', 'fd18::2']] as const) {
      for (const a of eth1.ipv6s!) {
        expect(await routeGet(ctr, a), `${a} → ${ctr}`).to.deep.equal({ dev, gateway: null, table: '254' });
        expect(await pingFrom(INST, a, ctr), `ping ${ctr} from ${a}`).to.equal(true);
      }
    }
  });

  it("an operator's IPv6 route in main is chosen for every secondary source", async () => {
    await execa('ip', ['-n', C0, '-6', 'addr', 'add', `${OPERATOR_TARGET}/128`, 'dev', 'lo']);
    await execa('ip', ['-n', INST, '-6', 'route', 'add', OPERATOR_NET, 'via', 'fd17::2', 'dev', 'docker0']);
    for (const a of eth1.ipv6s!) {
      expect(await routeGet(OPERATOR_TARGET, a), a).to.deep.equal({ dev: 'docker0', gateway: 'fd17::2', table: '254' });
      expect(await pingFrom(INST, a, OPERATOR_TARGET), `ping ${OPERATOR_TARGET} from ${a}`).to.equal(true);
    }
  });

  it("cloud-init's refresh (hotplug apply) takes a third IPv6 address from metadata: address, rule, reachable from the client", async () => {
    const added = `${lab.subnetInfo(2).prefix6}ff`;
    await lab.setNicMetadata(eth1.ifname, { ipv6s: [...eth1.ipv6s!, added] }, { name: NAME });
    const t = Date.now();
    const r = await hotplug(NAME, ['apply']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect((await lab.imdsRequests(t, { name: NAME })).filter((q) => q.status === 200).length, 'IMDS requests answered').to.be.greaterThan(0);
    expect((await ours6()).some((x) => x.src === added && x.table === '10001')).to.equal(true);
    await waitFor(`${added} usable on ${eth1.ifname}`, async () => (await v6Addrs(eth1.ifname)).includes(added));
    eth1.ipv6s!.push(added);
    await lab.resetSourceCheck({ name: NAME });
    for (const a of eth1.ipv6s!) expect(await fromClient(a), `ping ${a} from the client`).to.equal(true);
    const sc = await lab.sourceCheck({ name: NAME });
    expect(sc.drops, JSON.stringify(sc.dropped)).to.equal(0);
  });

  it('hot-remove: the IPv6 suppress rule stays while another NIC has a table and goes with the last; nothing IPv6 of eth1 is left', async () => {
    const eth2 = await lab.attach({ name: NAME, subnet: 3, ipv6s: 1 });
    await waitRecord(NAME, (r) => r.mac === eth2.mac && r.action === 'add');
    await waitFor('eth2 IPv6 table', async () => (await ipj('-6', 'route', 'show', 'table', '10002')).some((r) => r.dst === 'default'));

    await lab.detach(eth1.ifname, { name: NAME });
    await waitRecord(NAME, (r) => r.mac === eth1.mac && r.action === 'remove');
    await waitFor('eth1 rules gone', async () => !(await ours6()).some((r) => r.table === '10001'));
    const left = await ours6();
    expect(left.filter((r) => r.priority === 9999)).to.deep.equal([{ priority: 9999, src: 'all', table: '254', suppress_prefixlen: 0, protocol: '199' }]);
    expect(left.filter((r) => r.priority !== 9999).every((r) => r.table === '10002')).to.equal(true);
    expect(await ipj('-6', 'route', 'show', 'table', '10001')).to.deep.equal([]);

    await lab.detach(eth2.ifname, { name: NAME });
    await waitRecord(NAME, (r) => r.mac === eth2.mac && r.action === 'remove');
    await waitFor('every IPv6 rule of ours gone', async () => (await ours6()).length === 0);
    expect(await ipj('-6', 'route', 'show', 'table', '10002')).to.deep.equal([]);
    const everywhere = (await ipj('-6', 'addr', 'show')).flatMap((l) => ((l.addr_info as Obj[] | undefined) ?? []).map((a) => String(a.local)));
    for (const a of [...eth1.ipv6s!, ...eth2.ipv6s!]) expect(everywhere, a).to.not.include(a);
    expect((await ipj('-6', 'route', 'show', 'table', 'all')).filter((r) => r.protocol === '199')).to.deep.equal([]);
    // eth0 keeps its IPv6 and main its route by eth0's RA.
    expect(await v6Addrs('eth0')).to.include(eth0v6);
    expect(await fromClient(eth0v6)).to.equal(true);
  });
});
