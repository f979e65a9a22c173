/**
 * The rule layout in the lab, with real cloud-init and the event pipeline: a docker0-like bridge
 * made before a secondary NIC is configured and one made after, an operator's route in main, and
 * cloud-init's own metadata refresh (`hotplug apply`) reaching the IMDS with a secondary NIC and its
 * rules present. Reachability of every NIC address from outside (replies by their own NIC) is
 * routing.test.ts's, which runs with the same layout.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { lab, hotplug, waitFor, labFixture, waitRecord } from './helpers.js';
import { pingFrom, makeBridge } from './layout-helpers.js';

const NAME = 't-rl';
const INST = lab.labPaths(NAME).netnsInst;
const CLOUD = lab.labPaths(NAME).netnsCloud;
const C0 = `chy-${process.pid}-lc0`;
const C1 = `chy-${process.pid}-lc1`;
const OPERATOR_TARGET = '192.0.2.1'; // put on the cloud's lo by this test: lab-internal

const ipj = async (...a: string[]) => JSON.parse((await execa('ip', ['-n', INST, '-N', '-json', ...a])).stdout || '[]') as Record<string, unknown>[];
async function routeGet(dst: string, src?: string): Promise<{ dev: string; gateway: string | null; table: string }> {
  const r = (await ipj('route', 'get', dst, ...(src ? ['from', src] : [])))[0]!;
  return { dev: String(r.dev), gateway: (r.gateway as string | undefined) ?? null, table: String(r.table ?? '254') };
}

/** An HTTP request to the IMDS from `src` (python3 in the instance's netns); the status line's code, or null. */
const HTTP_PY = `
import http.client, sys
c = http.client.HTTPConnection('169.254.169.254', 80, timeout=5, source_address=(sys.argv[1], 0))
c.request('PUT', '/latest/api/token', headers={'X-aws-ec2-metadata-token-ttl-seconds': '60'})
print(c.getresponse().status)
`;
async function imdsFrom(src: string): Promise<number | null> {
  const r = await execa('ip', ['netns', 'exec', INST, '/usr/bin/python3', '-c', HTTP_PY, src], { reject: false, stdin: 'ignore', timeout: 20_000 });
  return r.exitCode === 0 ? Number(r.stdout.trim()) : null;
}

describe('rule layout in the lab (real cloud-init): bridges, an operator route, the IMDS', function () {
  this.timeout(300_000);
  const fx = labFixture(NAME, { install: true, config: 'retry:\n  budget_seconds: 6\n' });
  let eth0: { ips: string[]; gateway: string };
  let eth1: lab.NicInfo;
  /** The instance's secondary addresses: eth0's secondary IP and every address of eth1. */
  let secondaries: string[] = [];

  before(async function () {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root');
    await fx.boot();
    const st = await lab.status({ name: NAME });
    const e0 = st.nics.find((n) => n.ifname === 'eth0')!;
    eth0 = { ips: [...e0.ips], gateway: e0.gateway };
    // docker0 exists before the secondary NIC comes (as on a host where docker starts at boot).
    await makeBridge(INST, 'docker0', C0, '172.17.0', 'fd17');
  });

  after(async () => {
    for (const ns of [C0, C1]) await execa('ip', ['netns', 'del', ns], { reject: false });
    await fx.teardown();
    expect(await lab.leftovers(NAME)).to.deep.equal([]);
  });

  it('a secondary NIC and a secondary IP on eth0: the main-table rule sits ahead of eth1’s rules; eth0 has none', async () => {
    eth0.ips.push(...(await lab.addIp('eth0', 1, { name: NAME })));
    eth1 = await lab.attach({ name: NAME, ips: 2, subnet: 2 });
    await waitRecord(NAME, (r) => r.mac === eth1.mac && r.action === 'add');
    await waitFor('eth1 rules and eth0 secondary', async () => {
      const rules = await ipj('-4', 'rule', 'show');
      const addrs = (await ipj('-4', 'addr', 'show')).flatMap((l) => ((l.addr_info as { local: string }[]) ?? []).map((a) => `${l.ifname} ${a.local}`));
      return eth1.ips.every((ip) => rules.some((r) => r.src === ip && r.protocol === '199')) && addrs.includes(`eth0 ${eth0.ips[1]}`);
    });
    const st0 = (await lab.status({ name: NAME })).nics.find((n) => n.ifname === 'eth0')!;
    const ours = (await ipj('-4', 'rule', 'show')).filter((r) => r.protocol === '199');
    // eth1's subnet towards eth0's by eth1's table, main without its default, then eth1's addresses.
    expect(ours.slice(0, 2)).to.deep.equal([
      { priority: 9998, src: eth1.cidr.split('/')[0], srclen: Number(eth1.cidr.split('/')[1]), dst: st0.cidr.split('/')[0], dstlen: Number(st0.cidr.split('/')[1]), table: '10001', protocol: '199' },
      { priority: 9999, src: 'all', table: '254', suppress_prefixlen: 0, protocol: '199' },
    ]);
    expect(ours.slice(2).every((r) => Number(r.priority) > 9999 && eth1.ips.includes(String(r.src)))).to.equal(true);
    secondaries = [eth0.ips[1]!, ...eth1.ips];
  });

  it('the bridge made before: every secondary address reaches its container through docker0 (route get + ICMP)', async () => {
    for (const src of secondaries) {
      expect(await routeGet('172.17.0.2', src), src).to.deep.equal({ dev: 'docker0', gateway: null, table: '254' });
      expect(await pingFrom(INST, src, '172.17.0.2'), `ping from ${src}`).to.equal(true);
    }
  });

  it('a bridge made after the NIC was configured: the same, with nothing re-run', async () => {
    await makeBridge(INST, 'br-late', C1, '172.18.0', 'fd18');
    for (const src of secondaries) {
      expect(await routeGet('172.18.0.2', src), src).to.deep.equal({ dev: 'br-late', gateway: null, table: '254' });
      expect(await pingFrom(INST, src, '172.18.0.2'), `ping from ${src}`).to.equal(true);
    }
  });

  it("an operator's route via eth0's gateway: reachable from eth0's addresses, chosen for every secondary source", async () => {
    await execa('ip', ['-n', CLOUD, 'addr', 'add', `${OPERATOR_TARGET}/32`, 'dev', 'lo']);
    await execa('ip', ['-n', INST, 'route', 'add', '192.0.2.0/24', 'via', eth0.gateway, 'dev', 'eth0']);
    for (const src of eth0.ips) expect(await pingFrom(INST, src, OPERATOR_TARGET), `ping from ${src}`).to.equal(true);
    for (const src of secondaries) expect(await routeGet(OPERATOR_TARGET, src), src).to.deep.equal({ dev: 'eth0', gateway: eth0.gateway, table: '254' });
  });

  it("to a host in eth0's subnet (its gateway) every eth1 address goes by eth1; the cloud's source check passes it", async () => {
    await lab.resetSourceCheck({ name: NAME });
    for (const src of eth1.ips) {
      expect(await routeGet(eth0.gateway, src), src).to.deep.equal({ dev: eth1.ifname, gateway: eth1.gateway, table: '10001' });
      expect(await pingFrom(INST, src, eth0.gateway), `ping ${eth0.gateway} from ${src}`).to.equal(true);
    }
    const sc = await lab.sourceCheck({ name: NAME });
    expect(sc.drops, JSON.stringify(sc.dropped)).to.equal(0);
    for (const src of eth1.ips) expect(sc.passed.filter((f) => f.saddr === src).map((f) => f.ifname), src).to.deep.equal([eth1.ifname]);
  });

  it("cloud-init's refresh reaches the IMDS with the secondary NIC present; the IMDS answers every address, each by its own NIC", async () => {
    const t = Date.now();
    const [added] = await lab.addIp('eth1', 1, { name: NAME });
    const r = await hotplug(NAME, ['apply']);
    expect(r.exitCode, r.stderr).to.equal(0);
    const reqs = await lab.imdsRequests(t, { name: NAME });
    expect(reqs.filter((q) => q.status === 200).length, 'IMDS requests answered during the refresh').to.be.greaterThan(0);
    // The refreshed metadata was read: the new IP has its rule.
    expect((await ipj('-4', 'rule', 'show')).some((x) => x.src === added && x.table === '10001')).to.equal(true);
    // A client with no source address (cloud-init's) goes by main's default through eth0.
    expect(await routeGet('169.254.169.254')).to.deep.equal({ dev: 'eth0', gateway: eth0.gateway, table: '254' });
    await lab.resetSourceCheck({ name: NAME });
    const all = [...eth0.ips, ...eth1.ips, added!];
    for (const src of all) {
      const own = eth0.ips.includes(src) ? { dev: 'eth0', gateway: eth0.gateway, table: '254' } : { dev: eth1.ifname, gateway: eth1.gateway, table: '10001' };
      expect(await routeGet('169.254.169.254', src), src).to.deep.equal(own);
      expect(await imdsFrom(src), `IMDS from ${src}`).to.equal(200);
    }
    // The cloud saw each request leave by the NIC owning its source (none dropped by its source check).
    const sc = await lab.sourceCheck({ name: NAME });
    expect(sc.drops, JSON.stringify(sc.dropped)).to.equal(0);
    for (const src of all) expect(sc.passed.filter((f) => f.saddr === src).map((f) => f.ifname), src).to.deep.equal([eth0.ips.includes(src) ? 'eth0' : eth1.ifname]);
  });

  it('hotplug routes --explain in the instance names the main-table rule for the bridge and eth1’s rule for the rest', async () => {
    const src = eth1.ips[1]!;
    const a = await hotplug(NAME, ['routes', '--explain', '172.17.0.2', '--from', src, '--json']);
    expect(a.exitCode, a.stderr).to.equal(0);
    expect(JSON.parse(a.stdout).rule).to.include({ priority: 9999, table: 254, ours: true });
    const b = await hotplug(NAME, ['routes', '--explain', '10.0.9.10', '--from', src]);
    expect(b.exitCode, b.stderr).to.equal(0);
    expect(b.stdout).to.include(`rule:  10001: from ${src} lookup 10001 (ours, protocol 199)`).and.include(`via ${eth1.gateway} dev ${eth1.ifname}`);
  });
});
