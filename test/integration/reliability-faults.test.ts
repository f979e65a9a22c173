/**
 * Reliability: the metadata service failing in every way the lab's IMDS can (HTTP errors,
 * throttling, hangs, truncated bodies, resets, refused tokens, slowness), during a refresh and
 * in the middle of an apply's crawl, and on the udev-driven path; and metadata whose values are
 * wrong (a MAC that is not a MAC, an address that is not an address, device-number -1, shell
 * syntax, newlines, huge lists). Every time: bounded, a clear one-line error or record, nothing
 * half-applied, and once the fault clears the next event converges.
 */
import { expect } from 'chai';
import { lab, hotplug, sha, waitFor, labFixture } from './helpers.js';
import { converge, snapshot, eventRecords, logLines, type EventRecordLine, relLab } from '../support/harness.js';
import { integrity } from '../support/state.js';
import { recordFigures, recordChecks } from '../support/figures.js';
import { Tally } from '../support/tally.js';

const BUDGET = 10;
const fx = labFixture(relLab('t-rel-fault'), { mode: 'faithful', install: true, config: `retry:\n  budget_seconds: ${BUDGET}\n` });
const name = fx.name;
const OBJ = '/var/lib/cloud/instance/obj.pkl';
const ENI = '/etc/network/interfaces.d/50-cloud-init';
const FILES = [OBJ, ENI, '/run/cloud-hotplug/network-config.json', '/run/cloud-init/instance-data.json'];

/** Files by hash, plus addresses, rules and routes: what a failed refresh or apply must not change. */
async function fingerprint(): Promise<Record<string, unknown>> {
  const s = await snapshot(lab, name, FILES);
  const fp: Record<string, unknown> = { ...s.hashes };
  fp.addrs = s.addrs.map((a) => `${a.ifname} ${a.addr_info.map((i) => `${i.local}/${i.prefixlen}`).sort().join(',')}`).sort();
  fp.rules = s.rules.map((r) => JSON.stringify(r)).sort();
  fp.routes = s.routes.filter((r) => r.table !== 'local').map((r) => JSON.stringify(r)).sort();
  return fp;
}

/** The error line the CLI printed (`hotplug: …`, last one). */
const errorLine = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('hotplug: ')).pop() ?? '';
/** A clear error: says what failed, is not a bare exception repr like "'instance-id'" or a traceback. */
const CLEAR = /^hotplug: .*(metadata|crawl|refresh)/i;
const UNCLEAR = /Traceback|KeyError|^hotplug: '[^']*'$|undefined|\[object/;

async function records(): Promise<EventRecordLine[]> {
  return eventRecords(await logLines(lab, name));
}
const waitRecord = (pred: (r: EventRecordLine) => boolean, timeoutMs = 90_000) =>
  waitFor('event record', async () => (await records()).find(pred), timeoutMs, 200);

describe('reliability: metadata faults and invalid metadata', function () {
  this.timeout(600_000);
  let t0 = Date.now();
  const fig = new Tally();

  before(async function () {
    t0 = Date.now();
    await fx.boot();
    await lab.attach({ name, ips: 1 });
    const c = await converge(lab, name);
    expect(c.diffs, 'baseline').to.deep.equal([]);
  });
  after(async function () {
    await lab.clearFault({ name }).catch(() => {});
    recordFigures('faults', {
      what: 'IMDS faults (8 kinds) in refresh, mid-crawl of apply and on the udev path; invalid metadata values',
      events: fig.events,
      faults: fig.faults,
      crashes: 0,
      rejected: fig.rejected,
      lost: fig.lost,
      seconds: (Date.now() - t0) / 1000,
      ...(fig.unchecked ? { notes: `${fig.unchecked} events never checked` } : {}),
    });
    recordChecks('faults', this.test?.parent);
    await fx.teardown();
  });

  const FAULTS: lab.Fault[] = [
    { mode: 'http500' },
    { mode: 'http404' },
    { mode: 'http429' },
    { mode: 'hang' },
    { mode: 'truncate' },
    { mode: 'reset' },
    { mode: 'refuse-token' },
    { mode: 'slow', delayMs: 8000 },
  ];

  it('refresh-metadata under each fault type: bounded, one clear error line, no file, address, rule or route changed', async () => {
    const bad: string[] = [];
    for (const f of FAULTS) {
      const before = await fingerprint();
      const injected0 = (await lab.imdsStats({ name })).faultsInjected;
      await lab.setFault(f, { name });
      const r = await hotplug(name, ['refresh-metadata']);
      const injected = (await lab.clearFault({ name })).faultsInjected - injected0;
      fig.fault(injected);
      const line = errorLine(r.stderr);
      process.stderr.write(`      ${f.mode}: exit ${r.exitCode}, ${injected} faulted requests: ${line}\n`);
      if (r.exitCode === 0 || r.exitCode === 124) bad.push(`${f.mode}: exit ${r.exitCode} (want a failure, within the bound)`);
      if (!CLEAR.test(line) || UNCLEAR.test(line)) bad.push(`${f.mode}: unclear error ${JSON.stringify(line)}`);
      const after = await fingerprint();
      for (const k of Object.keys(before)) if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) bad.push(`${f.mode}: ${k} changed`);
    }
    expect(bad).to.deep.equal([]);
    // The fault cleared: the next refresh works and the state still equals metadata.
    const r = await hotplug(name, ['refresh-metadata']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect((await converge(lab, name)).diffs).to.deep.equal([]);
  });

  it('apply with a fault in the middle of its crawl (network subtree) → clear error, previous config and routes kept; after the fault the next apply configures the new NIC', async () => {
    // Events for the new NIC are skipped while disabled: only the manual apply acts.
    expect((await hotplug(name, ['disable'])).exitCode).to.equal(0);
    const nic = await lab.attach({ name });
    fig.event(nic.ifname);
    try {
      const bad: string[] = [];
      for (const f of [{ mode: 'http500' }, { mode: 'reset' }] as lab.Fault[]) {
        const before = await fingerprint();
        const injected0 = (await lab.imdsStats({ name })).faultsInjected;
        await lab.setFault({ ...f, pathPrefix: 'meta-data/network/interfaces/macs/' }, { name });
        const r = await hotplug(name, ['apply']);
        fig.fault((await lab.clearFault({ name })).faultsInjected - injected0);
        const line = errorLine(r.stderr);
        process.stderr.write(`      apply, ${f.mode} mid-crawl: exit ${r.exitCode}: ${line}\n`);
        if (r.exitCode === 0 || r.exitCode === 124) bad.push(`${f.mode}: exit ${r.exitCode}`);
        if (!CLEAR.test(line) || UNCLEAR.test(line)) bad.push(`${f.mode}: unclear error ${JSON.stringify(line)}`);
        const after = await fingerprint();
        for (const k of Object.keys(before)) if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) bad.push(`${f.mode}: ${k} changed`);
      }
      expect(bad).to.deep.equal([]);
      const r = await hotplug(name, ['apply']);
      expect(r.exitCode, r.stderr).to.equal(0);
      const c = await converge(lab, name, { known: false });
      fig.settle(c);
      expect(c.diffs).to.deep.equal([]);
    } finally {
      expect((await hotplug(name, ['enable'])).exitCode).to.equal(0);
      await lab.detach(nic.ifname, { name });
      fig.event(nic.ifname);
      fig.settle(await converge(lab, name));
    }
  });

  it('udev path: a NIC attached while the IMDS fails is configured once it recovers within the budget; obj.pkl byte-identical meanwhile', async () => {
    const obj0 = await sha(name, OBJ);
    const eni0 = await sha(name, ENI);
    const st0 = (await lab.imdsStats({ name })).faultsInjected;
    await lab.setFault({ mode: 'http500' }, { name });
    const nic = await lab.attach({ name });
    fig.event(nic.ifname);
    // The worker is retrying against the failing service ...
    await waitFor('faulted requests', async () => (await lab.imdsStats({ name })).faultsInjected >= st0 + 3, 30_000, 100);
    expect(await sha(name, OBJ), 'obj.pkl while the fault lasts').to.equal(obj0);
    expect(await sha(name, ENI), 'ENI while the fault lasts').to.equal(eni0);
    fig.fault((await lab.clearFault({ name })).faultsInjected - st0);
    const rec = await waitRecord((r) => r.mac === nic.mac && r.action === 'add');
    expect(rec.result, JSON.stringify(rec)).to.equal('configured');
    const c = await converge(lab, name);
    fig.settle(c);
    expect(c.diffs).to.deep.equal([]);
  });

  it('udev path: an IMDS that hangs past the budget → the add is reported with a clear reason, nothing written; after it clears the next event converges, that NIC included', async () => {
    const obj0 = await sha(name, OBJ);
    const eni0 = await sha(name, ENI);
    const st0 = (await lab.imdsStats({ name })).faultsInjected;
    await lab.setFault({ mode: 'hang' }, { name });
    const nic = await lab.attach({ name });
    fig.event(nic.ifname);
    let rec: EventRecordLine;
    try {
      rec = await waitRecord((r) => r.mac === nic.mac && r.action === 'add', (BUDGET + 60) * 1000);
      expect(await sha(name, OBJ), 'obj.pkl while the fault lasts').to.equal(obj0);
      expect(await sha(name, ENI), 'ENI while the fault lasts').to.equal(eni0);
    } finally {
      fig.fault((await lab.clearFault({ name })).faultsInjected - st0);
    }
    expect(rec.result, JSON.stringify(rec)).to.be.oneOf(['ignored', 'failed']);
    expect(rec.reason ?? '', 'a clear reason').to.match(/not in metadata after \d+s|metadata/);
    // The next event converges the whole instance, the NIC whose add gave up included.
    fig.event((await lab.attach({ name })).ifname);
    const c = await converge(lab, name);
    fig.settle(c);
    expect(c.diffs).to.deep.equal([]);
  });

  it('network-config.json replaced by a symlink or a directory → the add fails at once saying so (no retry until the budget), nothing written through the link; once removed, the next event converges', async () => {
    const NETJSON = '/run/cloud-hotplug/network-config.json';
    const target = '/etc/rl-target-netcfg';
    const sh = (script: string) => lab.exec(['sh', '-c', script], { name, cleanEnv: true, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    await lab.writeFileInInstance(target, 'precious\n', { name, mode: 0o600 });
    const obj0 = await sha(name, OBJ);
    const eni0 = await sha(name, ENI);
    expect((await sh(`mv ${NETJSON} ${NETJSON}.rl-bak && ln -s ${target} ${NETJSON}`)).exitCode).to.equal(0);
    const bad: string[] = [];
    try {
      for (const [label, plant, why] of [
        ['symlink', `ln -sfn ${target} ${NETJSON}`, 'it is a symlink'],
        ['directory', `rm -f ${NETJSON} && mkdir ${NETJSON}`, 'it is not a regular file'],
      ] as const) {
        expect((await sh(plant)).exitCode, label).to.equal(0);
        const nic = await lab.attach({ name });
        fig.event(nic.ifname);
        const rec = await waitRecord((r) => r.mac === nic.mac && r.action === 'add', (BUDGET + 60) * 1000);
        process.stderr.write(`      ${label}: ${rec.result} after ${rec.duration_ms} ms: ${rec.reason}\n`);
        const refused = new RegExp(`^refusing to write ${NETJSON.replace(/[.]/g, '\\.')}: ${why}$`).test(rec.reason ?? '');
        fig.reject(rec.result === 'failed' && refused);
        if (rec.result !== 'failed') bad.push(`${label}: result ${rec.result}`);
        if (!refused) bad.push(`${label}: reason ${JSON.stringify(rec.reason)}`);
        // At once: the retry budget (from the kernel event) was not spent on it.
        if (!(typeof rec.duration_ms === 'number' && rec.duration_ms < BUDGET * 1000)) bad.push(`${label}: after ${rec.duration_ms} ms (budget ${BUDGET} s)`);
        // Nothing stored: every target is checked before obj.pkl is written; nothing rendered.
        if ((await sha(name, OBJ)) !== obj0) bad.push(`${label}: obj.pkl rewritten`);
        if ((await sha(name, ENI)) !== eni0) bad.push(`${label}: ENI rewritten`);
      }
      expect((await lab.readFileInInstance(target, { name })).toString(), 'written through the link').to.equal('precious\n');
    } finally {
      await sh(`rm -rf ${NETJSON} && mv ${NETJSON}.rl-bak ${NETJSON}; rm -f ${target}`);
    }
    expect(bad).to.deep.equal([]);
    // The next event configures everything, the NICs whose adds failed included.
    fig.event((await lab.attach({ name })).ifname);
    const c = await converge(lab, name);
    fig.settle(c);
    expect(c.diffs).to.deep.equal([]);
  });

  it('metadata values that are wrong (not a MAC, not an address, device-number -1, shell syntax, newlines, a huge list) → refused with a log line, nothing half-applied or executed', async () => {
    const cases: { label: string; patch: Parameters<typeof lab.setNicMetadata>[1]; reason: RegExp }[] = [
      { label: 'address not an address', patch: { ips: ['10.0.2.999'] }, reason: /local-ipv4s\[0\] "10\.0\.2\.999" is not an IPv4 address/ },
      { label: 'device-number -1', patch: { deviceNumber: -1 }, reason: /device-number "-1"/ },
      { label: 'shell syntax', patch: { ips: ['10.0.2.77;touch /tmp/rel-pwned'] }, reason: /is not an IPv4 address/ },
      { label: 'newline + ifupdown option', patch: { ips: ['10.0.2.78', '10.0.2.79/24\n    up touch /tmp/rel-pwned2'] }, reason: /is not an IPv4 address/ },
      { label: 'huge list', patch: { ips: Array.from({ length: 3000 }, (_, i) => `10.0.2.${(i % 200) + 20}`) }, reason: /lists 3\d{3} values/ },
    ];
    const before = await fingerprint();
    const eniBefore = await sha(name, ENI);
    // Attach with metadata hidden, corrupt it, then reveal it: the worker sees only the bad values.
    const nics = await lab.attachMany(cases.length + 1, { name, lagSeconds: 600 });
    const badMac = nics[cases.length]!;
    for (let i = 0; i < cases.length; i++) await lab.setNicMetadata(nics[i]!.mac, cases[i]!.patch, { name });
    await lab.setNicMetadata(badMac.mac, { mac: 'not-a-mac' }, { name });
    for (const n of nics.slice(0, cases.length)) await lab.setLag(n.mac, 0, { name });
    await lab.setLag('not-a-mac', 0, { name });
    for (const n of nics) fig.event(n.ifname);
    const bad: string[] = [];
    for (let i = 0; i < cases.length; i++) {
      const rec = await waitRecord((r) => r.mac === nics[i]!.mac && r.action === 'add');
      const refused = rec.result === 'failed' && /metadata refused/.test(rec.reason ?? '') && cases[i]!.reason.test(rec.reason ?? '');
      fig.reject(refused);
      if (!refused) bad.push(`${cases[i]!.label}: ${JSON.stringify(rec)}`);
    }
    // The NIC whose MAC is garbage cannot match any device, and metadata lists nothing else for
    // it: its add fails at once with the refusal (it used to wait out the budget and end
    // "ignored: not in metadata").
    const recMac = await waitRecord((r) => r.mac === badMac.mac && r.action === 'add', (BUDGET + 60) * 1000);
    process.stderr.write(`      bad MAC: ${recMac.result} after ${recMac.duration_ms} ms: ${recMac.reason}\n`);
    const macRefused = recMac.result === 'failed' && /^metadata refused: .*"not-a-mac": MAC "not-a-mac" is not a MAC address/.test(recMac.reason ?? '');
    fig.reject(macRefused);
    if (!macRefused) bad.push(`bad MAC: ${JSON.stringify(recMac)}`);
    const log = (await logLines(lab, name)).join('\n');
    if (!/refused metadata of NIC "not-a-mac": MAC "not-a-mac" is not a MAC address/.test(log)) bad.push('no log line for the bad MAC');
    for (const c of cases) if (!new RegExp(`refused metadata of NIC .*${c.reason.source}`).test(log)) bad.push(`no log line for ${c.label}`);
    expect(bad).to.deep.equal([]);
    // Nothing of them applied; nothing executed.
    const s = await snapshot(lab, name);
    expect(await sha(name, ENI), 'ENI').to.equal(eniBefore);
    for (const n of nics) expect(s.addrs.find((a) => a.ifname === n.ifname)?.addr_info.filter((i) => i.family === 'inet') ?? [], n.ifname).to.deep.equal([]);
    const after = await fingerprint();
    expect(after.rules, 'rules').to.deep.equal(before.rules);
    const pwned = await lab.exec(['sh', '-c', 'ls /tmp/rel-pwned* 2>/dev/null; true'], { name, cleanEnv: true, env: { PATH: '/usr/bin:/bin' } });
    expect(pwned.stdout.trim(), 'metadata ran a command').to.equal('');
    expect(integrity(s)).to.deep.equal([]);

    // A configured NIC whose metadata turns bad keeps its previous configuration (apply says why).
    const st = await lab.status({ name });
    const good = st.nics.find((n) => n.deviceNumber === 1)!;
    const prevIps = [...good.ips];
    await lab.setNicMetadata(good.mac, { ips: [...prevIps, '10.0.2.300'] }, { name });
    const r = await hotplug(name, ['apply']);
    const KEPT = /refused metadata of NIC .*local-ipv4s\[\d\] "10\.0\.2\.300" is not an IPv4 address; it keeps its previous metadata/;
    fig.reject(r.exitCode === 0 && KEPT.test(r.stderr));
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(r.stderr).to.match(KEPT);
    await lab.setNicMetadata(good.mac, { ips: prevIps }, { name });
    for (const n of nics) {
      await lab.detach(n.ifname, { name });
      fig.event(n.ifname);
    }
    await lab.removeNicMetadata('not-a-mac', { name });
    const c = await converge(lab, name);
    fig.settle(c);
    expect(c.diffs).to.deep.equal([]);
  });
});
