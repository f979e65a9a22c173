import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderedButDown } from '../src/pipeline/worker.js';
import type { NetworkConfig } from '../bridge/index.js';

describe('renderedButDown: interfaces rendered earlier that ifupdown never brought up', () => {
  let root: string;
  const netcfg = { version: 1, config: ['eth0', 'eth1', 'eth2', 'eth3'].map((name, i) => ({ type: 'physical', name, mac_address: `02:00:00:00:00:1${i}` })) } as unknown as NetworkConfig;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'hp-rbd-'));
    for (const n of ['eth0', 'eth1', 'eth2']) mkdirSync(join(root, 'sys/class/net', n), { recursive: true });
    mkdirSync(join(root, 'run/network'), { recursive: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('up = state written into ifstate.<if>; an empty one (ifup killed mid-way: it is only the lock) is down; absent devices are skipped', () => {
    writeFileSync(join(root, 'run/network/ifstate.eth0'), 'eth0=eth0\n');
    writeFileSync(join(root, 'run/network/ifstate.eth1'), ''); // ifup killed after taking its lock
    // eth2: no ifstate at all; eth3: rendered but no device
    expect(renderedButDown(netcfg, root)).to.deep.equal(['eth1', 'eth2']);
  });
});
