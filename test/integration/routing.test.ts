/**
 * Policy routing end to end, the way a cloud checks it: a client host outside the instance's
 * subnets (the lab's chl-NAME-client, 10.0.9.10) reaches every address of every NIC through the
 * cloud's router, and the cloud drops any packet that leaves a NIC with a source address outside
 * that NIC's subnet (the lab's source/destination check, nftables on the subnet bridges, with
 * counters per NIC and source address). Real cloud-init, real udevd, the installed udev rule:
 * NICs are configured by the event pipeline; `hotplug apply` where metadata changes without an event.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { lab, hotplug, readIn, waitFor, labFixture, waitRecord } from './helpers.js';

const NAME = 't-rt';
const UPSTREAM = 't-rt-up';
const PORT = 7000;
/** A TCP server in the instance: answers every connection with the address it was reached on. */
const SERVER_JS = `
require('node:net').createServer((c) => c.end(c.localAddress + '\\n')).listen(${PORT}, '0.0.0.0', () => console.log('ready'));
setTimeout(() => process.exit(0), 30 * 60 * 1000);
`;
const TABLE_BASE = 10000;

async function apply(name: string, args: string[] = []): Promise<void> {
  const r = await hotplug(name, ['apply', ...args]);
  expect(r.exitCode, `hotplug apply ${args.join(' ')}: ${r.stderr}`).to.equal(0);
}

// A NIC metadata never lists must not keep a worker busy for a minute in tests.
const configYaml = (routing: boolean) => `retry:\n  budget_seconds: 6\n${routing ? '' : 'routing:\n  enabled: false\n'}`;

async function config(name: string, routing: boolean): Promise<void> {
  await lab.writeFileInInstance('/etc/cloud-hotplug/config.yaml', configYaml(routing), { name });
}

/** `ip -N -json ARGS` in the instance's network namespace (read from the host: no nsenter). */
async function ipj(name: string, args: string[]): Promise<Record<string, unknown>[]> {
  const r = await execa('ip', ['-n', `chl-${name}-inst`, '-N', '-json', ...args]);
  return JSON.parse(r.stdout || '[]') as Record<string, unknown>[];
}

interface NetView {
  /** "PRIO from SRC lookup TABLE proto P" (and "to DST" when the rule has one). */
  rules: string[];
  /** IPv4 routes outside the local table: "table T DST via GW dev DEV proto P". */
  routes: string[];
  /** "DEV ADDR/LEN" (IPv4). */
  addrs: string[];
}

async function netView(name: string): Promise<NetView> {
  const [rules, routes, addrs] = await Promise.all([ipj(name, ['-4', 'rule', 'show']), ipj(name, ['-4', 'route', 'show', 'table', 'all']), ipj(name, ['-4', 'addr', 'show'])]);
  return {
    rules: rules
      .map((r) => `${r.priority} from ${r.src ?? 'all'}${r.srclen !== undefined ? `/${r.srclen}` : ''}${r.dst ? ` to ${r.dst}/${r.dstlen}` : ''} lookup ${r.table} proto ${r.protocol ?? 0}`)
      .sort(),
    routes: routes
      .filter((r) => r.table !== '255')
      .map((r) => `table ${r.table ?? 254} ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev} proto ${r.protocol ?? 0}`)
      .sort(),
    addrs: addrs.flatMap((l) => ((l.addr_info as { local: string; prefixlen: number }[]) ?? []).map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`)).sort(),
  };
}

const ourRules = (v: NetView, table: number) => v.rules.filter((r) => r.endsWith(`lookup ${table} proto 199`));

/** The NIC is configured: its addresses are on it and (secondary NICs) a rule for each of them exists. */
async function waitNic(name: string, nic: { ifname: string; ips: string[]; deviceNumber: number }, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `${nic.ifname} configured with ${nic.ips.join(',')}`,
    async () => {
      const v = await netView(name);
      if (!nic.ips.every((ip) => v.addrs.some((a) => a.startsWith(`${nic.ifname} ${ip}/`)))) return false;
      if (nic.deviceNumber === 0) return true;
      const rs = ourRules(v, TABLE_BASE + nic.deviceNumber);
      return nic.ips.every((ip) => rs.some((r) => r.includes(` from ${ip} `)));
    },
    timeoutMs,
    200,
  );
}

interface Reach {
  ping: boolean;
  /** What the TCP server answered (the address it was reached on), or null. */
  tcp: string | null;
}

async function reach(name: string, ip: string, waitMs = 1500): Promise<Reach> {
  const p = await lab.clientPing(ip, { name, count: 2, waitMs });
  const t = await lab.clientTcp(ip, PORT, { name, timeoutMs: waitMs });
  return { ping: p.received > 0, tcp: t.ok ? t.data.trim() : null };
}

/** The client reaches every address, and the cloud saw each reply leave through the NIC it came in on. */
async function expectReachable(name: string, nics: { ifname: string; ips: string[] }[]): Promise<void> {
  await lab.resetSourceCheck({ name });
  const results: Record<string, Reach> = {};
  for (const n of nics) for (const ip of n.ips) results[ip] = await reach(name, ip);
  const want = Object.fromEntries(Object.keys(results).map((ip) => [ip, { ping: true, tcp: ip }]));
  expect(results).to.deep.equal(want);
  const sc = await lab.sourceCheck({ name });
  expect(sc.drops, `dropped: ${JSON.stringify(sc.dropped)}`).to.equal(0);
  for (const n of nics) {
    for (const ip of n.ips) {
      const left = sc.passed.filter((f) => f.saddr === ip);
      // ping: 2 replies; TCP: SYN-ACK, FIN-ACK and the data at least.
      expect(left.map((f) => f.ifname), `NICs that packets from ${ip} left through`).to.deep.equal([n.ifname]);
      expect(left[0]!.packets, `packets from ${ip}`).to.be.at.least(4);
    }
  }
}

interface Server {
  stop(): void;
}

/** Start the TCP server in the instance (a process of ours: stopped by its handle, and by lab.down). */
async function startServer(name: string): Promise<Server> {
  const argv = await lab.instanceCommand([process.execPath, '-e', SERVER_JS], { name });
  const p = execa(argv[0]!, argv.slice(1), { stdin: 'ignore', reject: false, buffer: false });
  const ok = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 10_000);
    p.stdout!.on('data', (d: Buffer) => {
      if (String(d).includes('ready')) {
        clearTimeout(t);
        resolve(true);
      }
    });
    void p.then(() => resolve(false));
  });
  if (!ok) {
    p.kill('SIGKILL');
    throw new Error('the TCP server in the instance did not start');
  }
  return { stop: () => void p.kill('SIGKILL') };
}

describe('policy routing end to end (client behind the cloud, source/destination check)', function () {
  this.timeout(300_000);
  const fx = labFixture(NAME, { install: true, config: configYaml(true) });
  let server: Server | undefined;
  const nics: lab.NicInfo[] = [];
  let eth0: { ifname: string; ips: string[]; deviceNumber: number };
  /** The user's own rules and routes (see below), as `netView` prints them. */
  let userState: string[] = [];
  async function userBits(): Promise<string[]> {
    const v = await netView(NAME);
    return [...v.rules.filter((r) => r.startsWith('777 ') || r.startsWith('900 ')), ...v.routes.filter((r) => r.includes('198.51.100.0/24') || r.includes('203.0.113.0/24'))];
  }

  before(async function () {
    if (process.getuid?.() !== 0) this.skip();
    await fx.boot();
    server = await startServer(NAME);
    const st = await lab.status({ name: NAME });
    const e0 = st.nics.find((n) => n.ifname === 'eth0')!;
    eth0 = { ifname: 'eth0', ips: [...e0.ips], deviceNumber: 0 };
  });

  after(async function () {
    server?.stop();
    await fx.teardown();
    expect(await lab.leftovers(NAME)).to.deep.equal([]);
  });

  it('two NICs (eth0, eth1), two secondary IPs each: the client reaches every address (ping + TCP), each reply leaves by its NIC', async () => {
    // As on EC2: assigning IPs changes metadata only; attaching a NIC is what raises an event.
    eth0.ips.push(...(await lab.addIp('eth0', 2, { name: NAME })));
    nics.push(await lab.attach({ name: NAME, ips: 2, subnet: 2 }));
    await waitRecord(NAME, (r) => r.mac === nics[0]!.mac && r.action === 'add');
    // The primary's new secondaries come from the same reconcile (ifup of an up eth0 would not add them).
    await waitNic(NAME, nics[0]!);
    await waitNic(NAME, eth0);
    await expectReachable(NAME, [eth0, ...nics]);
  });

  it('four NICs, two secondary IPs each: every address reachable, every reply through its own NIC', async () => {
    nics.push(await lab.attach({ name: NAME, ips: 2, subnet: 3 }));
    nics.push(await lab.attach({ name: NAME, ips: 2, subnet: 4 }));
    for (const n of nics.slice(1)) await waitNic(NAME, n);
    const v = await netView(NAME);
    for (const n of nics) {
      const t = TABLE_BASE + n.deviceNumber;
      expect(v.routes, `table ${t}`).to.include.members([`table ${t} default via ${n.gateway} dev ${n.ifname} proto 199`, `table ${t} ${n.cidr} dev ${n.ifname} proto 199`]);
    }
    await expectReachable(NAME, [eth0, ...nics]);
  });

  it('a secondary IP added to metadata + hotplug apply → reachable; removed + apply → its rule and address gone, the rest untouched', async () => {
    const eth2 = nics[1]!;
    const [ip] = await lab.addIp(eth2.ifname, 1, { name: NAME });
    await apply(NAME);
    let v = await netView(NAME);
    expect(v.addrs).to.include(`${eth2.ifname} ${ip}/24`);
    expect(ourRules(v, TABLE_BASE + eth2.deviceNumber).some((r) => r.includes(` from ${ip} `))).to.equal(true);
    await expectReachable(NAME, [{ ifname: eth2.ifname, ips: [ip!] }]);

    // Remove it (added by us) and one cloud-init rendered as a static alias when the NIC came.
    const before = await netView(NAME);
    const gone = [ip!, eth2.ips[1]!];
    for (const g of gone) await lab.removeIp(eth2.ifname, g, { name: NAME });
    await apply(NAME);
    v = await netView(NAME);
    const mentions = (l: string) => gone.some((g) => l.includes(` ${g}/`) || l.includes(` from ${g} `));
    expect(v.addrs.filter(mentions), 'addresses left').to.deep.equal([]);
    expect(v.rules.filter(mentions), 'rules left').to.deep.equal([]);
    expect(v.addrs).to.deep.equal(before.addrs.filter((l) => !mentions(l)));
    expect(v.rules).to.deep.equal(before.rules.filter((l) => !mentions(l)));
    expect(v.routes).to.deep.equal(before.routes);
    eth2.ips = eth2.ips.filter((x) => !gone.includes(x));
    await expectReachable(NAME, [eth2]);
  });

  it("a user's own rules and routes survive apply and reconcile (and, below, a NIC's removal)", async () => {
    const eth1 = nics[0]!;
    const eth3 = nics[2]!;
    const argv = [
      ['ip', 'rule', 'add', 'from', eth1.ips[0]!, 'lookup', '777', 'priority', '777'],
      ['ip', 'route', 'add', '198.51.100.0/24', 'via', eth1.gateway, 'dev', eth1.ifname, 'table', '777'],
      ['ip', 'route', 'add', '203.0.113.0/24', 'via', '10.0.1.1', 'dev', 'eth0'],
      // Pointing into the table of a NIC we manage (and will detach).
      ['ip', 'rule', 'add', 'to', '198.51.100.0/24', 'lookup', String(TABLE_BASE + eth3.deviceNumber), 'priority', '900'],
    ];
    for (const a of argv) {
      const r = await lab.exec(a, { name: NAME, cleanEnv: true, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      expect(r.exitCode, `${a.join(' ')}: ${r.stderr}`).to.equal(0);
    }
    const mine = await userBits();
    expect(mine.length).to.equal(4);
    await apply(NAME);
    expect(await userBits()).to.deep.equal(mine);
    await apply(NAME, ['--no-refresh']);
    expect(await userBits()).to.deep.equal(mine);
    userState = mine;
  });

  it('detach a NIC → no rule, route, address or state entry of it remains; the user’s rules and routes are still there', async () => {
    const eth3 = nics[2]!;
    const table = TABLE_BASE + eth3.deviceNumber;
    // One per address, and one towards each other NIC's subnet (eth0, eth1, eth2).
    expect(ourRules(await netView(NAME), table).map((r) => r.includes(' to '))).to.have.members([false, false, false, true, true, true]);
    await lab.detach(eth3.ifname, { name: NAME });
    const rec = await waitRecord(NAME, (r) => r.mac === eth3.mac && r.action === 'remove');
    expect(rec.result, JSON.stringify(rec)).to.equal('removed');
    const v = await netView(NAME);
    expect(v.rules.filter((r) => r.includes(`lookup ${table} proto 199`)), 'rules').to.deep.equal([]);
    expect(v.routes.filter((r) => r.startsWith(`table ${table} `)), 'routes').to.deep.equal([]);
    expect(v.addrs.filter((a) => eth3.ips.some((ip) => a.includes(` ${ip}/`))), 'addresses').to.deep.equal([]);
    const state = JSON.parse((await readIn(NAME, '/run/cloud-hotplug/routing-state.json')) ?? '{}') as { nics?: Record<string, unknown> };
    expect(Object.keys(state.nics ?? {})).to.not.include(eth3.mac);
    expect(await userBits(), "user's rules and routes").to.deep.equal(userState.filter((l) => !l.includes(`dev ${eth3.ifname}`)));
    nics.splice(2, 1);
    await expectReachable(NAME, [eth0, ...nics]);
  });

  it('IMDS failing → hotplug apply fails and no rule, route or address is removed', async () => {
    const eth1 = nics[0]!;
    // What a successful apply would remove now:
    await lab.removeIp(eth1.ifname, eth1.ips[2]!, { name: NAME });
    const before = await netView(NAME);
    await lab.imdsStop({ name: NAME });
    try {
      const r = await hotplug(NAME, ['apply']);
      expect(r.exitCode, 'apply with the IMDS down').to.not.equal(0);
      expect(await netView(NAME)).to.deep.equal(before);
    } finally {
      await lab.imdsStart({ name: NAME });
    }
    await apply(NAME);
    const after = await netView(NAME);
    expect(after.addrs).to.not.include(`${eth1.ifname} ${eth1.ips[2]}/24`);
    eth1.ips = eth1.ips.slice(0, 2);
  });

  it('a second reconcile changes nothing: no pending change, nothing missing or extra', async () => {
    const countLines = async () => ((await readIn(NAME, '/var/log/cloud-hotplug.log')) ?? '').split('\n').filter((l) => l.includes('policy routing reconciled')).length;
    await apply(NAME);
    const n = await countLines();
    const before = await netView(NAME);
    await apply(NAME);
    expect(await countLines(), 'reconciles that changed something').to.equal(n);
    expect(await netView(NAME)).to.deep.equal(before);
    const dry = await hotplug(NAME, ['apply', '--dry-run', '--json']);
    expect(dry.exitCode, dry.stderr).to.equal(0);
    expect((JSON.parse(dry.stdout) as { routes: string[] }).routes).to.deep.equal([]);
    const r = await hotplug(NAME, ['routes', '--json']);
    expect(r.exitCode, r.stderr).to.equal(0);
    const j = JSON.parse(r.stdout) as { pending: unknown[]; rows: { status: string; text: string }[] };
    expect(j.pending).to.deep.equal([]);
    expect(j.rows.filter((x) => x.status === 'missing' || x.status === 'extra')).to.deep.equal([]);
    expect(j.rows.filter((x) => x.status === 'ok').length).to.be.greaterThan(0);
    await expectReachable(NAME, [eth0, ...nics]);
  });
});

describe('without policy routing (upstream cloud-init alone): why the feature exists', function () {
  this.timeout(300_000);
  const fx = labFixture(UPSTREAM, { install: true, config: configYaml(false) });
  let server: Server | undefined;

  before(async function () {
    if (process.getuid?.() !== 0) this.skip();
    await fx.boot();
    server = await startServer(UPSTREAM);
  });

  after(async function () {
    server?.stop();
    await fx.teardown();
    expect(await lab.leftovers(UPSTREAM)).to.deep.equal([]);
  });

  it("a secondary NIC configured by cloud-init's renderer alone is unreachable: its replies leave by eth0 and the cloud drops them; routing on fixes it", async () => {
    const eth1 = await lab.attach({ name: UPSTREAM, ips: 2, subnet: 2 });
    await waitRecord(UPSTREAM, (r) => r.mac === eth1.mac && r.action === 'add');
    // cloud-init rendered the DHCP address and the two secondaries (static aliases); ifup put them on.
    await waitFor('eth1 addresses', async () => {
      const v = await netView(UPSTREAM);
      return eth1.ips.every((ip) => v.addrs.includes(`eth1 ${ip}/24`));
    });
    expect((await netView(UPSTREAM)).rules.filter((r) => r.endsWith('proto 199'))).to.deep.equal([]);
    await lab.resetSourceCheck({ name: UPSTREAM });
    const eth0ip = (await lab.status({ name: UPSTREAM })).nics.find((n) => n.ifname === 'eth0')!.ips[0]!;
    expect(await reach(UPSTREAM, eth0ip)).to.deep.equal({ ping: true, tcp: eth0ip });
    for (const ip of eth1.ips) expect(await reach(UPSTREAM, ip, 1000), ip).to.deep.equal({ ping: false, tcp: null });
    const sc = await lab.sourceCheck({ name: UPSTREAM });
    for (const ip of eth1.ips) {
      expect(sc.dropped.filter((f) => f.saddr === ip).map((f) => f.ifname), `replies from ${ip} dropped at`).to.deep.equal(['eth0']);
      expect(sc.passed.filter((f) => f.saddr === ip), `replies from ${ip} let through`).to.deep.equal([]);
    }

    // The same instance with policy routing on: one apply and every address answers through eth1.
    await config(UPSTREAM, true);
    await apply(UPSTREAM);
    await expectReachable(UPSTREAM, [{ ifname: 'eth1', ips: eth1.ips }]);
  });
});
