/**
 * Hostile input inside a real instance (root, real udevd): events with hostile devpaths and names
 * through the installed udev program, hook.js and `hotplug handle`; symlinks planted where state
 * is written; obj.pkl replaced by a file that is not root's, is world-writable, or would run code
 * when unpickled. Refused and logged; nothing executed, nothing written through a link, no
 * network state changed; once the plant is removed the next event converges.
 */
import { expect } from 'chai';
import { lab, hotplug, sha, waitFor, HOOK, labFixture } from './helpers.js';
import { converge, logLines, snapshot, waitDrained, PATH_ENV, relLab, eventRecords } from '../support/harness.js';
import { integrity } from '../support/state.js';
import { recordFigures, recordChecks } from '../support/figures.js';
import { Tally } from '../support/tally.js';
import { UDEV_HOOK, CLI_JS } from '../../src/install/files.js';

const fx = labFixture(relLab('t-rel-host'), { mode: 'faithful', install: true, config: 'retry:\n  budget_seconds: 10\n' });
const name = fx.name;
const OBJ = '/var/lib/cloud/instance/obj.pkl';
const ENI = '/etc/network/interfaces.d/50-cloud-init';

const sh = (argv: string[], env: Record<string, string> = {}) => lab.exec(argv, { name, cleanEnv: true, env: { ...PATH_ENV, ...env }, timeoutMs: 60_000 });

describe('reliability: hostile input in a real instance', function () {
  this.timeout(600_000);
  let t0 = Date.now();
  const fig = new Tally();

  before(async function () {
    t0 = Date.now();
    await fx.boot();
    fig.event((await lab.attach({ name })).ifname);
    const c = await converge(lab, name);
    fig.settle(c);
    expect(c.diffs).to.deep.equal([]);
  });
  after(async function () {
    recordFigures('hostile', {
      what: 'hostile events via udev sh program, hook.js, handle; planted symlinks; unsafe obj.pkl (in the lab)',
      events: fig.events,
      faults: 0,
      crashes: 0,
      rejected: fig.rejected,
      lost: fig.lost,
      seconds: (Date.now() - t0) / 1000,
      ...(fig.unchecked ? { notes: `${fig.unchecked} events never checked` } : {}),
    });
    recordChecks('hostile', this.test?.parent);
    await fx.teardown();
  });

  it('hostile devpaths and interface names through the udev program, hook.js and hotplug handle → refused and logged; nothing queued, run or changed', async () => {
    const eni0 = await sha(name, ENI);
    const cases = [
      { iface: 'eth9', devpath: '/devices/virtual/net/../../../etc' },
      { iface: 'eth9', devpath: '/devices/virtual/net/eth9;touch /tmp/rel-host-pwned' },
      { iface: 'eth9', devpath: '/devices/$(touch /tmp/rel-host-pwned)' },
      { iface: 'eth9', devpath: '/devices/virtual/net/eth9\nACTION=remove' },
      { iface: 'eth9', devpath: '/devices/virtual net/eth9' },
      { iface: 'eth0123456789abc', devpath: '/devices/virtual/net/x' },
      { iface: 'eth/../../x', devpath: '/devices/virtual/net/x' },
      { iface: '`touch /tmp/rel-host-pwned`', devpath: '/devices/virtual/net/x' },
      { iface: '-v', devpath: '/devices/virtual/net/x' },
    ];
    const bad: string[] = [];
    for (const c of cases) {
      const env = { ACTION: 'add', INTERFACE: c.iface, DEVPATH: c.devpath };
      const runs = [
        ['udev program', await sh(['/bin/sh', UDEV_HOOK, process.execPath, CLI_JS], env)],
        ['hook.js', await sh([process.execPath, HOOK], env)],
        ['handle', await hotplug(name, ['handle', '--action', 'add', '--iface', c.iface, '--devpath', c.devpath])],
      ] as const;
      for (const [via, r] of runs) {
        fig.reject(r.exitCode !== 0 && /hook rejected event: /.test(r.stderr));
        if (r.exitCode === 0) bad.push(`${via} ${JSON.stringify(c)}: exit 0`);
        if (!/hook rejected event: /.test(r.stderr)) bad.push(`${via} ${JSON.stringify(c)}: no rejection line: ${r.stderr.trim().slice(0, 200)}`);
      }
    }
    const s = await snapshot(lab, name);
    expect(bad).to.deep.equal([]);
    expect(s.queue.filter((q) => q.endsWith('.json')), 'queued').to.deep.equal([]);
    expect((await sh(['sh', '-c', 'ls /tmp/rel-host-pwned* 2>/dev/null; true'])).stdout.trim(), 'executed').to.equal('');
    expect(await sha(name, ENI)).to.equal(eni0);
    const log = (await logLines(lab, name)).filter((l) => l.includes('hook rejected event'));
    expect(log.length, 'rejections in /var/log/cloud-hotplug.log').to.be.at.least(cases.length * 3);
    for (const l of log) expect(l, 'one line per rejection (no newline smuggled in)').to.match(/^hotplug\[\d+\] error: hook rejected event: .* duration_ms=/);
  });

  it('symlinks planted at the state files, a queue entry and the lock → never written through, refused and logged; removed, the next event converges', async () => {
    const plants: Record<string, string> = {
      '/run/cloud-hotplug/recent-events.json': '/etc/rel-target-recent',
      '/run/cloud-hotplug/last-apply.json': '/etc/rel-target-last',
      '/run/cloud-hotplug/network-config.json': '/etc/rel-target-netcfg',
      '/run/cloud-hotplug/known-interfaces.json': '/etc/rel-target-known',
      '/run/cloud-hotplug/routing-state.json': '/etc/rel-target-routing',
    };
    for (const [link, target] of Object.entries(plants)) {
      await lab.writeFileInInstance(target, 'precious\n', { name, mode: 0o600 });
      await sh(['sh', '-c', 'test ! -e "$1" || mv "$1" "$1.rel-bak"', 'sh', link]);
      await sh(['ln', '-sfn', target, link]);
    }
    // A queue entry that links to a well-formed event elsewhere, and a lock file that links to a new file.
    const evId = 'feedfacefeedface';
    const evName = `${String(Date.now()).padStart(13, '0')}-${'0'.repeat(20)}-${evId}.json`;
    await lab.writeFileInInstance('/etc/rel-target-event', JSON.stringify({ id: evId, action: 'add', ifname: 'eth7', devpath: '/devices/virtual/net/eth7', time: Date.now(), mac: '02:00:00:00:77:77' }) + '\n', { name });
    await sh(['ln', '-sfn', '/etc/rel-target-event', `/run/cloud-hotplug/queue/${evName}`]);
    // Attach: the worker refuses to write through the planted links.
    const nic = await lab.attach({ name });
    fig.event(nic.ifname);
    await waitFor('the worker to give up or finish', async () => {
      const l = await logLines(lab, name);
      return l.some((x) => x.includes(nic.mac) && /"result":"(configured|failed|ignored)"/.test(x)) ? l : null;
    }, 120_000, 250);
    const log = (await logLines(lab, name)).join('\n');
    const quarantined = new RegExp(`quarantined unreadable queue file file=${evName} error="it is a symlink"`);
    fig.reject(quarantined.test(log));
    expect(log, 'the queue symlink quarantined').to.match(quarantined);
    expect(log, 'a refusal logged').to.match(/refusing to write \S+: it is a symlink/);
    // The add fails at once on the first refused write (the config store), not after the retry budget.
    const rec = eventRecords(log.split('\n')).find((x) => x.mac === nic.mac && x.action === 'add');
    expect(rec?.result, JSON.stringify(rec)).to.equal('failed');
    expect(rec?.reason ?? '').to.match(/^refusing to write \/run\/cloud-hotplug\/network-config\.json: it is a symlink$/);
    expect(rec?.duration_ms ?? Infinity, 'within the budget').to.be.below(10_000);
    // each planted state file left intact is one refusal
    for (const target of Object.values(plants)) {
      const intact = (await lab.readFileInInstance(target, { name })).toString() === 'precious\n';
      fig.reject(intact);
      expect(intact, `${target} written through its link`).to.equal(true);
    }
    expect(log, 'the linked event was never acted on').to.not.match(/eth7/);
    // The lock: a planted link refused by the udev program, the hook and the worker alike
    // (replaced only once no worker holds the real one).
    await waitDrained(lab, name);
    await sh(['rm', '-f', '/run/cloud-hotplug/apply.lock']);
    await sh(['ln', '-sfn', '/etc/rel-lock-target', '/run/cloud-hotplug/apply.lock']);
    const r = await sh(['/bin/sh', UDEV_HOOK, process.execPath, CLI_JS], { ACTION: 'add', INTERFACE: nic.ifname, DEVPATH: `/devices/virtual/net/${nic.ifname}` });
    fig.reject(r.exitCode === 1 && /refusing \/run\/cloud-hotplug\/apply\.lock: it is a symlink/.test(r.stderr));
    expect(r.exitCode).to.equal(1);
    expect(r.stderr).to.match(/refusing \/run\/cloud-hotplug\/apply\.lock: it is a symlink/);
    const w = await hotplug(name, ['worker']);
    fig.reject(w.exitCode !== 0 && /ELOOP|symlink/.test(w.stderr));
    expect(w.exitCode).to.not.equal(0);
    expect(w.stderr).to.match(/ELOOP|symlink/);
    expect((await sh(['sh', '-c', 'ls /etc/rel-lock-target 2>/dev/null; true'])).stdout.trim(), 'flock created the target').to.equal('');
    // Remove the plants: the next event converges (the NIC above included).
    await sh(['rm', '-f', '/run/cloud-hotplug/apply.lock', ...Object.keys(plants)]);
    for (const link of Object.keys(plants)) await sh(['sh', '-c', 'test ! -e "$1.rel-bak" || mv "$1.rel-bak" "$1"', 'sh', link]);
    fig.event((await lab.attach({ name })).ifname);
    const c = await converge(lab, name);
    fig.settle(c);
    expect(c.diffs).to.deep.equal([]);
    expect(integrity(c.snap)).to.deep.equal([]);
  });

  it('obj.pkl not root-owned, world-writable, or a pickle that would run code → refused and logged, nothing executed or changed; restored, the next event converges', async () => {
    await sh(['cp', '-p', OBJ, '/root/rel-obj.pkl.orig']);
    const eni0 = await sha(name, ENI);
    const addrs0 = JSON.stringify((await snapshot(lab, name)).addrs);
    const evil =
      "import pickle,os\nclass E:\n  def __reduce__(self):\n    return (os.system, ('touch /tmp/rel-pickle-pwned',))\nopen('/root/rel-evil.pkl','wb').write(pickle.dumps(E()))\n";
    await sh(['/usr/bin/python3', '-c', evil]);
    const variants: [string, string[][], RegExp][] = [
      ['not root-owned', [['cp', '/root/rel-obj.pkl.orig', OBJ], ['chown', '1000:1000', OBJ], ['chmod', '0400', OBJ]], /owned by uid 1000, not root/],
      ['world-writable', [['cp', '/root/rel-obj.pkl.orig', OBJ], ['chown', '0:0', OBJ], ['chmod', '0602', OBJ]], /writable by group or others/],
      ['a pickle that would run code', [['cp', '/root/rel-evil.pkl', OBJ], ['chown', '0:0', OBJ], ['chmod', '0400', OBJ]], /references (posix|os)\.system, which is not allowed/],
    ];
    try {
      for (const [label, prep, re] of variants) {
        for (const argv of prep) await sh(argv);
        const before = (await logLines(lab, name)).length;
        fig.event((await lab.attach({ name })).ifname);
        const lines = await waitFor(`refusal of ${label}`, async () => {
          const l = (await logLines(lab, name)).slice(before);
          return l.some((x) => re.test(x)) ? l : null;
        }, 60_000, 250).catch(() => null);
        fig.reject(lines !== null);
        expect(lines, `${label}: refusal logged`).to.not.equal(null);
        expect((await sh(['sh', '-c', 'ls /tmp/rel-pickle-pwned 2>/dev/null; true'])).stdout.trim(), `${label}: executed`).to.equal('');
        expect(await sha(name, ENI), `${label}: ENI`).to.equal(eni0);
        expect(JSON.stringify((await snapshot(lab, name)).addrs), `${label}: addresses`).to.equal(addrs0);
      }
    } finally {
      await sh(['cp', '-p', '/root/rel-obj.pkl.orig', OBJ]);
    }
    // Restored: the events queued meanwhile and the next one converge.
    fig.event((await lab.attach({ name })).ifname);
    const c = await converge(lab, name);
    fig.settle(c);
    expect(c.diffs).to.deep.equal([]);
    expect(integrity(c.snap)).to.deep.equal([]);
  });
});
