/**
 * What `hotplug daemon` runs with: the event policy, the bridge manager (fake bridge) and the
 * supervisor.
 */
import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, utimesSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dispatch, runPolicyCommand, HANDLERS, type PolicyJob } from '../src/pipeline/policies.js';
import { isBridgeFailure } from '../bridge/manager.js';
import { Bridges as BridgeManager } from '../src/core/bridges.js';
import { supervise } from '../src/daemon/supervise.js';
import { BridgeError, type Bridge } from '../bridge/index.js';
import { defaultConfig, validateConfig } from '../src/config.js';
import { setQuiet } from '../src/util/log.js';

describe('daemon: event policy', () => {
  it('one map from policy to handler, the same for every kind of event', async () => {
    expect(Object.keys(HANDLERS).sort()).to.deep.equal(['apply', 'ignore', 'reconcile', 'run']);
    const calls: string[] = [];
    const job = (kind: PolicyJob['kind']): PolicyJob => ({
      kind,
      vars: {},
      apply: async () => (calls.push(`apply ${kind}`), { ok: true }),
      reconcile: async () => (calls.push(`reconcile ${kind}`), { ok: true, routingChanges: 2 }),
    });
    expect(await dispatch('apply', job('add'))).to.deep.equal({ handler: 'apply', ok: true });
    expect(await dispatch('reconcile', job('link_down'))).to.deep.equal({ handler: 'reconcile', ok: true, routingChanges: 2 });
    expect(await dispatch('ignore', job('metadata_change'))).to.deep.equal({ handler: 'ignore', ok: true, reason: 'events.metadata_change policy is ignore' });
    expect(await dispatch({ run: ['/bin/false'] }, job('remove'))).to.include({ handler: 'run', ok: false });
    expect(calls).to.deep.equal(['apply add', 'reconcile link_down']);
    expect(validateConfig({ events: { add: 'apply', remove: { run: ['/bin/true'] } } }).events.remove).to.deep.equal({ run: ['/bin/true'] });
    expect(defaultConfig.events.add).to.equal('apply');
  });
  it('runs {run: argv} without a shell, with the event in a clean environment; failures are reported, not thrown', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hp-dmn-pol-'));
    try {
      const out = join(dir, 'env');
      const script = join(dir, 'hook.sh');
      writeFileSync(script, `#!/bin/sh\nenv > ${out}\n`, { mode: 0o755 });
      const ok = await runPolicyCommand([script], { HOTPLUG_EVENT: 'add', HOTPLUG_IFACE: 'eth1; rm -rf /' });
      expect(ok.ok).to.equal(true);
      const env = readFileSync(out, 'utf8');
      expect(env).to.match(/^HOTPLUG_IFACE=eth1; rm -rf \/$/m);
      expect(env).to.not.match(/^HOME=/m);
      const bad = await runPolicyCommand(['/bin/false'], {});
      expect(bad).to.deep.equal({ ok: false, detail: '/bin/false exited 1' });
      const missing = await runPolicyCommand(['/nonexistent/x'], {});
      expect(missing.ok).to.equal(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('daemon: bridge manager (fake bridge)', () => {
  let dir: string;
  before(() => {
    setQuiet(true);
    dir = mkdtempSync(join(tmpdir(), 'hp-dmn-br-'));
    writeFileSync(join(dir, 'obj.pkl'), 'x');
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    setQuiet(false);
  });

  function fake() {
    let n = 0;
    const procs: (EventEmitter & { pid: number })[] = [];
    const opens: number[] = [];
    const factory = async (): Promise<Bridge> => {
      const id = ++n;
      const proc = Object.assign(new EventEmitter(), { pid: 100_000 + id });
      procs.push(proc);
      return {
        pythonPid: proc.pid,
        open: async () => {
          opens.push(id);
          return { obj_pkl: 'x', summary: { macs: [`m${id}`] } as never };
        },
        summary: async () => ({ macs: [] }) as never,
        close: async () => {},
      } as unknown as Bridge;
    };
    return { factory, procs, opens, count: () => n };
  }

  it('starts once (warm), re-opens when obj.pkl changes under it, restarts after the child died', async () => {
    const f = fake();
    const m = new BridgeManager({ factory: f.factory, objPkl: join(dir, 'obj.pkl'), procOf: async (b) => f.procs.find((p) => p.pid === b.pythonPid) });
    const deaths: string[] = [];
    m.onDeath = (w) => deaths.push(w);
    const b1 = await m.get();
    expect(await m.get()).to.equal(b1);
    expect(f.count()).to.equal(1);
    // Another process rewrote obj.pkl: the same bridge re-opens it.
    const t = new Date(Date.now() + 5000);
    utimesSync(join(dir, 'obj.pkl'), t, t);
    expect(await m.get()).to.equal(b1);
    expect(f.opens).to.deep.equal([1, 1]);
    expect(m.reopens).to.equal(1);
    // Our own writes do not look foreign.
    const t2 = new Date(Date.now() + 10_000);
    utimesSync(join(dir, 'obj.pkl'), t2, t2);
    m.noteOwnWrites();
    await m.get();
    expect(m.reopens).to.equal(1);
    // The Python child dies: reported once, the next get() starts a new one.
    f.procs[0]!.emit('exit', null, 'SIGKILL');
    expect(deaths).to.have.length(1);
    expect(deaths[0]).to.match(/exited \(SIGKILL\)/);
    expect(m.health().alive).to.equal(false);
    const b2 = await m.get();
    expect(b2).to.not.equal(b1);
    expect(m.restarts).to.equal(1);
    expect(m.health().pid).to.equal(100_002);
  });

  it('classifies dead and stuck bridges as restartable, other bridge errors not', () => {
    expect(isBridgeFailure(new BridgeError('x', 'BridgeDead'))).to.equal(true);
    expect(isBridgeFailure(new BridgeError('x', 'BridgeTimeout'))).to.equal(true);
    expect(isBridgeFailure(new BridgeError('x', 'RefreshFailed'))).to.equal(false);
    expect(isBridgeFailure(new Error('x'))).to.equal(false);
  });
});

describe('daemon: supervisor', function () {
  this.timeout(20_000);
  it('restarts the daemon when it is killed, stops when it exits cleanly', async () => {
    setQuiet(true);
    const dir = mkdtempSync(join(tmpdir(), 'hp-dmn-sup-'));
    try {
      const count = join(dir, 'n');
      // 1st and 2nd run: SIGKILL themselves; 3rd: exit 0.
      const js = `const fs=require('fs');const f=process.argv[1];const n=Number(fs.existsSync(f)?fs.readFileSync(f,'utf8'):0)+1;fs.writeFileSync(f,String(n));if(n<3)process.kill(process.pid,'SIGKILL');`;
      const rc = await supervise([process.execPath, '-e', js, count], { signals: false, restartMs: 50 });
      expect(rc).to.equal(0);
      expect(readFileSync(count, 'utf8')).to.equal('3');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      setQuiet(false);
    }
  });
});
