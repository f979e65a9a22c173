import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coalesce } from '../src/pipeline/coalesce.js';
import { loadKnown, saveKnown, rememberInterface, forgetInterface, ifnameForMac } from '../src/record/interfaces.js';
import type { HotplugEvent } from '../src/events/event.js';
import { setQuiet } from '../src/util/log.js';

let n = 0;
function ev(action: 'add' | 'remove', ifname: string, mac?: string, seqnum?: number): HotplugEvent {
  n++;
  return { id: `e${n}`, action, ifname, devpath: `/devices/x/net/${ifname}`, time: 1000 + n, ...(mac ? { mac } : {}), ...(seqnum !== undefined ? { seqnum } : {}) };
}
const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const C = '02:00:00:00:00:0c';
const summary = (evs: HotplugEvent[], known = {}) => {
  const b = coalesce(evs, known);
  return {
    adds: [...b.adds].map(([k, e]) => `${k}=${e.mac ?? '?'}`),
    removes: [...b.removes].map(([k, e]) => `${k}=${e.mac ?? '?'}`),
    replaced: b.replaced,
  };
};

describe('coalesce', () => {
  it('serves everything in one batch and acks every id, superseded ones too', () => {
    const evs = [ev('add', 'eth1', A), ev('add', 'eth2', B), ev('remove', 'eth1', A), ev('add', 'eth3', C)];
    const b = coalesce(evs);
    expect(b.ids).to.deep.equal(evs.map((e) => e.id));
    expect([...b.adds.keys()]).to.deep.equal(['eth2', 'eth3']);
    expect([...b.removes.keys()]).to.deep.equal(['eth1']);
    expect(coalesce([...evs, evs[0]!]).ids).to.have.length(4); // duplicates once
  });

  it('add then remove = remove', () => {
    expect(summary([ev('add', 'eth1', A), ev('remove', 'eth1')])).to.deep.equal({ adds: [], removes: ['eth1=02:00:00:00:00:0a'], replaced: [] });
  });

  it('remove then add of the same MAC = add only', () => {
    expect(summary([ev('remove', 'eth1', A), ev('add', 'eth1', A)])).to.deep.equal({ adds: [`eth1=${A}`], removes: [], replaced: [] });
    expect(summary([ev('remove', 'eth1'), ev('add', 'eth1', A)], { eth1: { mac: A } })).to.deep.equal({ adds: [`eth1=${A}`], removes: [], replaced: [] });
  });

  it('remove then add of another MAC = replaced NIC: remove old and add new', () => {
    const r = ev('remove', 'eth1', A);
    const a = ev('add', 'eth1', B);
    const b = coalesce([r, a]);
    expect(b.removes.get('eth1')).to.deep.equal(r);
    expect(b.adds.get('eth1')).to.deep.equal(a);
    expect(b.replaced).to.deep.equal(['eth1']);
  });

  it('uses the known MAC when the remove carries none, or when the remove was missed', () => {
    const known = { eth1: { mac: A } };
    expect(summary([ev('remove', 'eth1'), ev('add', 'eth1', B)], known)).to.deep.equal({ adds: [`eth1=${B}`], removes: [`eth1=${A}`], replaced: ['eth1'] });
    const missed = summary([ev('add', 'eth1', B)], known);
    expect(missed).to.deep.equal({ adds: [`eth1=${B}`], removes: [`eth1=${A}`], replaced: ['eth1'] });
    expect(summary([ev('remove', 'eth1')], known).removes).to.deep.equal([`eth1=${A}`]);
  });

  it('a NIC added and removed inside the batch needs no teardown of its own', () => {
    // add(A) remove add(B): nothing was configured before the batch, so just add B.
    expect(summary([ev('add', 'eth1', A), ev('remove', 'eth1'), ev('add', 'eth1', B)])).to.deep.equal({ adds: [`eth1=${B}`], removes: [], replaced: [] });
    expect(summary([ev('add', 'eth1', A), ev('add', 'eth1', B)])).to.deep.equal({ adds: [`eth1=${B}`], removes: [], replaced: [] });
  });

  it('an add without a MAC cannot be compared and is a plain add', () => {
    expect(summary([ev('remove', 'eth1', A), ev('add', 'eth1')])).to.deep.equal({ adds: ['eth1=?'], removes: [], replaced: [] });
  });

  it('orders one interface by seqnum when all its events have one (udev runs devpaths in parallel)', () => {
    const add = ev('add', 'eth1', B, 11);
    const rem = ev('remove', 'eth1', A, 10);
    // arrival order add, remove; kernel order remove(10), add(11)
    expect(summary([add, rem])).to.deep.equal({ adds: [`eth1=${B}`], removes: [`eth1=${A}`], replaced: ['eth1'] });
    // without seqnums, arrival order rules: add then remove = remove
    expect(summary([ev('add', 'eth2', B), ev('remove', 'eth2', A)]).adds).to.deep.equal([]);
  });

  it('ignores inherited properties of the known map', () => {
    expect(summary([ev('add', 'constructor', A)], {}).removes).to.deep.equal([]);
  });
});

describe('known interfaces', () => {
  let dir: string;
  let file: string;
  before(() => setQuiet(true));
  after(() => setQuiet(false));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hp-known-'));
    file = join(dir, 'run', 'known-interfaces.json');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('missing file = empty; remember/forget persist atomically as sorted JSON', async () => {
    expect({ ...(await loadKnown(file)) }).to.deep.equal({});
    await rememberInterface('eth2', { mac: B, addedAt: 2, deviceNumber: 2 }, file);
    await rememberInterface('eth1', { mac: A, addedAt: 1 }, file);
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')))).to.deep.equal(['eth1', 'eth2']);
    const k = await loadKnown(file);
    expect({ ...k }).to.deep.equal({ eth1: { mac: A, addedAt: 1 }, eth2: { mac: B, addedAt: 2, deviceNumber: 2 } });
    expect(ifnameForMac(k, '02:00:00:00:00:0B')).to.equal('eth2');
    await forgetInterface('eth1', file);
    expect(Object.keys(await loadKnown(file))).to.deep.equal(['eth2']);
    expect(statSync(file).mode & 0o777).to.equal(0o644);
  });

  it('drops corrupt files and invalid entries instead of failing', async () => {
    await saveKnown({ eth1: { mac: A, addedAt: 1 } }, file);
    writeFileSync(file, JSON.stringify({ eth1: { mac: A, addedAt: 1 }, '../x': { mac: A, addedAt: 1 }, eth2: { mac: 'nope', addedAt: 1 }, __proto__x: 5 }));
    expect(Object.keys(await loadKnown(file))).to.deep.equal(['eth1']);
    writeFileSync(file, '{broken');
    expect(Object.keys(await loadKnown(file))).to.deep.equal([]);
  });

  it('a "__proto__" interface name cannot pollute the record', async () => {
    writeFileSync(file.replace('/run/known-interfaces.json', '/k.json'), '{"__proto__": {"mac": "02:00:00:00:00:0a", "addedAt": 1}}');
    const k = await loadKnown(join(dir, 'k.json'));
    expect(Object.keys(k)).to.deep.equal(['__proto__']);
    expect(({} as Record<string, unknown>).mac).to.equal(undefined);
    expect(Object.getPrototypeOf(k)).to.equal(null);
  });

  it('refuses to record an invalid entry', async () => {
    let err: unknown;
    try { await rememberInterface('eth1', { mac: 'AA', addedAt: 1 }, file); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(Error);
  });
});
