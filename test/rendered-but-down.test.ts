/** IfupdownStack.renderedButDown: interfaces rendered earlier that ifupdown never brought up (src/stack/ifupdown.ts). */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IfupdownStack } from '../src/stack/ifupdown.js';

describe('ifupdown stack: renderedButDown', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'hp-rbd-'));
    for (const n of ['eth0', 'eth1', 'eth2']) mkdirSync(join(root, 'sys/class/net', n), { recursive: true });
    mkdirSync(join(root, 'run/network'), { recursive: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('up = state written into ifstate.<if>; an empty one (ifup killed mid-way: it is only the lock) is down; absent devices are skipped', async () => {
    writeFileSync(join(root, 'run/network/ifstate.eth0'), 'eth0=eth0\n');
    writeFileSync(join(root, 'run/network/ifstate.eth1'), ''); // ifup killed after taking its lock
    // eth2: no ifstate at all; eth3: rendered but no device
    expect(await new IfupdownStack(root).renderedButDown(['eth0', 'eth1', 'eth2', 'eth3'])).to.deep.equal(['eth1', 'eth2']);
  });

  it('without /run/network (ifupdown never ran) nothing is reported', async () => {
    rmSync(join(root, 'run/network'), { recursive: true });
    expect(await new IfupdownStack(root).renderedButDown(['eth0', 'eth1'])).to.deep.equal([]);
  });
});
