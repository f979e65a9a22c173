/**
 * Coalescing (pure): everything queued when the worker takes a snapshot is served by ONE metadata
 * refresh and ONE apply, so only the net effect per interface matters.
 *
 * Per ifname, the last event wins:
 *   add → remove              = remove
 *   remove → add, same MAC    = add only (the same device came back; apply is idempotent)
 *   remove → add, other MAC   = replaced NIC: remove (old MAC) AND add (new MAC); callers tear
 *                               down removes before applying adds. Also when no remove was seen
 *                               but the interface we configured (known) had a different MAC.
 * "Old MAC" is what was there before the batch: known[ifname].mac, else the MAC of the batch's
 * first event for that name if it is a remove. A remove without a MAC gets the old MAC filled in. Events added and removed within the batch were never configured, so they
 * need no teardown. An add without a MAC cannot be compared and counts as a plain add.
 *
 * Order within one ifname: by udev seqnum when every event of it has one (udev runs events of
 * different devpaths in parallel, so arrival time can lie), else arrival order.
 */
import type { HotplugEvent } from '../events/event.js';

export interface Batch {
  adds: Map<string, HotplugEvent>;
  removes: Map<string, HotplugEvent>;
  /** ifnames in both maps because the NIC behind the name changed. */
  replaced: string[];
  /** Every input event id (superseded ones too), to ack after handling. */
  ids: string[];
}

/** What we configured before this batch, by ifname (see known.ts). */
export type KnownMacs = Readonly<Record<string, { readonly mac: string } | undefined>>;

function ordered(group: HotplugEvent[]): HotplugEvent[] {
  if (!group.every((e) => e.seqnum !== undefined)) return group;
  return [...group].sort((a, b) => a.seqnum! - b.seqnum!); // stable: ties keep arrival order
}

/** `events` in arrival order (as queue.list() returns them). */
export function coalesce(events: readonly HotplugEvent[], known: KnownMacs = {}): Batch {
  const groups = new Map<string, HotplugEvent[]>();
  const ids: string[] = [];
  const seen = new Set<string>();
  for (const ev of events) {
    if (!seen.has(ev.id)) {
      seen.add(ev.id);
      ids.push(ev.id);
    }
    const g = groups.get(ev.ifname);
    if (g) g.push(ev);
    else groups.set(ev.ifname, [ev]);
  }

  const batch: Batch = { adds: new Map(), removes: new Map(), replaced: [], ids };
  for (const [ifname, group] of groups) {
    const evs = ordered(group);
    const last = evs[evs.length - 1]!;
    const knownMac = Object.hasOwn(known, ifname) ? known[ifname]?.mac : undefined;
    const firstRemove = evs.find((e) => e.action === 'remove');
    const oldMac = knownMac ?? (firstRemove === evs[0] ? firstRemove?.mac : undefined);

    if (last.action === 'remove') {
      // Fill in the MAC so the teardown knows which device it was (sysfs is gone).
      const mac = last.mac ?? oldMac ?? lastMac(evs);
      batch.removes.set(ifname, mac && !last.mac ? { ...last, mac } : last);
      continue;
    }
    batch.adds.set(ifname, last);
    if (oldMac && last.mac && oldMac !== last.mac) {
      const lastRemove = [...evs].reverse().find((e) => e.action === 'remove');
      // No remove seen (missed event): synthesize one from the add; its id is the add's.
      batch.removes.set(ifname, { ...(lastRemove ?? last), action: 'remove', mac: oldMac });
      batch.replaced.push(ifname);
    }
  }
  return batch;
}

function lastMac(evs: HotplugEvent[]): string | undefined {
  for (let i = evs.length - 1; i >= 0; i--) if (evs[i]!.mac) return evs[i]!.mac;
  return undefined;
}
