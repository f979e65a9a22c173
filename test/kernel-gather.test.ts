/** awaitingUdev: which links the kernel just reported a batch should wait for (daemon/kernel-events.ts). */
import { expect } from 'chai';
import { awaitingUdev, GATHER_SEEN_MS } from '../src/daemon/kernel-events.js';
import type { HotplugEvent } from '../src/events/event.js';
import type { LinkLine } from '../src/daemon/monitor.js';
import { defaultConfig } from '../src/config.js';

const NOW = 1_800_000_000_000;
const link = (i: number, mac?: string): LinkLine => ({ deleted: false, index: 10 + i, ifname: `eth${i}`, flags: [], ...(mac ? { mac } : {}) });
const ev = (action: 'add' | 'remove', ifname: string, mac?: string, time = NOW): HotplugEvent => ({ id: `0123456789abcde${ifname.length}`, action, ifname, devpath: `/devices/virtual/net/${ifname}`, time, ...(mac ? { mac } : {}) }) as HotplugEvent;
const filter = defaultConfig.filter;

describe('daemon: a batch waits for the udev events of links the kernel just reported', () => {
  it('links not queued yet are awaited; queued ones (by MAC, else by name) are not', () => {
    const pending = [
      { link: link(1, '0a:00:00:00:00:01'), seenAt: NOW - 20 },
      { link: link(2, '0a:00:00:00:00:02'), seenAt: NOW - 20 },
      { link: link(3), seenAt: NOW - 20 },
      { link: link(4), seenAt: NOW - 20 },
    ];
    // eth1 queued under its MAC (renamed by udev), eth3 by name; eth2 queued only as a remove
    const known = [ev('add', 'ens5', '0a:00:00:00:00:01'), ev('remove', 'eth2', '0a:00:00:00:00:02'), ev('add', 'eth3')];
    expect(awaitingUdev(pending, known, NOW, filter).map((l) => l.ifname)).to.deep.equal(['eth2', 'eth4']);
  });

  it('nothing to wait for when every link is queued', () => {
    expect(awaitingUdev([{ link: link(1, '0a:00:00:00:00:01'), seenAt: NOW }], [ev('add', 'eth1', '0a:00:00:00:00:01')], NOW, filter)).to.deep.equal([]);
  });

  it('links seen long ago, filtered out, or only matched by events older than the link are not awaited', () => {
    const pending = [
      { link: link(1), seenAt: NOW - GATHER_SEEN_MS - 1 },
      { link: { ...link(2), ifname: 'docker0' }, seenAt: NOW },
      { link: link(3, '0a:00:00:00:00:03'), seenAt: NOW },
    ];
    // an add of eth3's MAC from long before this link appeared is another life of the NIC
    expect(awaitingUdev(pending, [ev('add', 'eth3', '0a:00:00:00:00:03', NOW - 60_000)], NOW, filter).map((l) => l.ifname)).to.deep.equal(['eth3']);
  });
});
