/**
 * BridgeManager.withBridge (bridge/manager.ts) with a fake bridge factory and fake Python
 * children: a dead or stuck bridge is restarted and the work run again on the new one, up to
 * `attempts` runs; any other error is rethrown unchanged, with no restart.
 */
import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BridgeManager } from '../bridge/manager.js';
import { BridgeError, type Bridge, type BridgeLogger } from '../bridge/index.js';

function fake() {
  let n = 0;
  const procs: (EventEmitter & { pid: number })[] = [];
  const closed: number[] = [];
  const factory = async (): Promise<Bridge> => {
    const id = ++n;
    const proc = Object.assign(new EventEmitter(), { pid: 200_000 + id });
    procs.push(proc);
    return {
      pythonPid: proc.pid,
      close: async () => {
        closed.push(id);
      },
    } as unknown as Bridge;
  };
  return { factory, procs, closed, count: () => n };
}

describe('bridge manager: withBridge (fake bridge)', () => {
  let dir: string;
  let objPkl: string;
  const lines: string[] = [];
  const log: BridgeLogger = (level, msg) => lines.push(`${level}: ${msg}`);
  let opens: number;
  const manager = (f: ReturnType<typeof fake>) =>
    new BridgeManager({
      factory: f.factory,
      objPkl,
      open: async () => {
        opens++;
        return { summary: { macs: [] } as never };
      },
      procOf: async (b) => f.procs.find((p) => p.pid === b.pythonPid),
      log,
    });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hp-mgr-'));
    objPkl = join(dir, 'obj.pkl');
    writeFileSync(objPkl, 'x');
    lines.length = 0;
    opens = 0;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a dead bridge mid-work: restarted, the work runs again on a new bridge, its result returned', async () => {
    const f = fake();
    const m = manager(f);
    const restarts: unknown[] = [];
    const seen: (number | undefined)[] = [];
    const r = await m.withBridge(
      'batch',
      async (b) => {
        seen.push(b.pythonPid);
        if (seen.length === 1) {
          f.procs[0]!.emit('exit', null, 'SIGKILL');
          throw new BridgeError('apply_network: python bridge process exited (SIGKILL)', 'BridgeDead');
        }
        return 'done';
      },
      { onRestart: (i) => restarts.push(i) },
    );
    expect(r).to.equal('done');
    expect(seen).to.deep.equal([200_001, 200_002]);
    expect(f.count()).to.equal(2);
    expect(f.closed).to.deep.equal([1]);
    expect(m.restarts).to.equal(1);
    expect(restarts).to.deep.equal([{ kind: 'BridgeDead', reason: 'apply_network: python bridge process exited (SIGKILL)', attempt: 1 }]);
    expect(lines.some((l) => l.startsWith('error: python bridge failed during batch'))).to.equal(true);
    expect(opens).to.equal(2);
  });

  it('stuck every time: `attempts` runs, attempts-1 restarts, then the last failure unchanged', async () => {
    const f = fake();
    const m = manager(f);
    let runs = 0;
    const last = new BridgeError('refresh: python bridge timed out after 5 ms', 'BridgeTimeout');
    const e = await m
      .withBridge('refresh', async () => {
        runs++;
        throw runs === 2 ? last : new BridgeError('refresh: python bridge timed out after 5 ms', 'BridgeTimeout');
      }, { attempts: 2 })
      .catch((x) => x);
    expect(e).to.equal(last);
    expect(runs).to.equal(2);
    expect(m.restarts).to.equal(1);
    expect(f.count()).to.equal(2);
  });

  it('any other error is rethrown as it is, with no restart', async () => {
    const f = fake();
    const m = manager(f);
    const boom = new BridgeError('metadata crawl failed', 'RefreshFailed');
    expect(await m.withBridge('refresh', async () => Promise.reject(boom)).catch((x) => x)).to.equal(boom);
    const plain = new Error('bug');
    expect(await m.withBridge('refresh', async () => Promise.reject(plain)).catch((x) => x)).to.equal(plain);
    expect(m.restarts).to.equal(0);
    expect(f.count()).to.equal(1);
  });

  it('writes to obj.pkl inside the work are our own: no re-open afterwards', async () => {
    const f = fake();
    const m = manager(f);
    await m.withBridge('store', async () => {
      const t = new Date(Date.now() + 5000);
      utimesSync(objPkl, t, t);
    });
    await m.get();
    expect(m.reopens).to.equal(0);
    expect(opens).to.equal(1);
  });
});
