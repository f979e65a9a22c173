/**
 * The daemon's kernel event source: what `ip monitor` reports (daemon/monitor.ts), turned into
 * work. A new or deleted link waits SETTLE_MS for udev's copy of the event and is queued only if
 * udev did not queue it (udev may not run, or our rule may be missing); link down/up flaps are
 * debounced into one 'links' job; address and route churn (and an RA's new default router) into
 * one routing repair.
 */
import type { Config } from '../config.js';
import { enqueue, list } from '../events/queue.js';
import { newEventId, validateEvent, type HotplugEvent } from '../events/event.js';
import { isCandidate } from '../pipeline/filter.js';
import { devpathOf, driverOf } from '../util/sysfs.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';
import type { LinkCallbacks, LinkLine, RoutingChange } from './monitor.js';

/** A kernel link event waits this long for udev's copy before the daemon queues its own. */
export const SETTLE_MS = 1000;
/** New links seen this recently whose udev event is not queued yet are worth a batch waiting for. */
export const GATHER_SEEN_MS = 500;
/** Link down/up flaps within this window count once. */
const LINK_DEBOUNCE_MS = 500;
/** Address and route churn comes in bursts (a DHCP exchange, networkd configuring links). */
const ROUTING_DEBOUNCE_MS = 1000;
/** Link state changes of interfaces a batch just handled are the batch's own doing. */
const OWN_CHANGE_MS = 3000;

export type KernelEventRecord = { type: 'kernel_event'; time: string; action: 'add' | 'remove'; iface: string; mac?: string; result: 'queued' | 'seen_from_udev' };

/** What the source needs from the daemon. */
export interface KernelEventsHost {
  config(): Config;
  stopping(): boolean;
  /** Events a batch took from the queue lately (handled, so no longer listed). */
  claimed(): readonly HotplugEvent[];
  /** When a batch last handled the interface (ms since the epoch), 0 if never. */
  touchedAt(ifname: string): number;
  emit(rec: KernelEventRecord): void;
  drain(): void;
  /** Link changes are due: schedule a job that takes them (takeLinkChanges). */
  links(): void;
  repairRouting(): void;
}

/**
 * Links the kernel reported (within GATHER_SEEN_MS of `now`) that udev has not queued yet and that
 * the filter would keep: a storm's later NICs, whose hooks are still running. Matched by MAC, else
 * by name, against queued and lately claimed add events.
 */
export function awaitingUdev(pending: Iterable<{ link: LinkLine; seenAt: number }>, known: readonly HotplugEvent[], now: number, filter: Config['filter']): LinkLine[] {
  const adds = known.filter((ev) => ev.action === 'add');
  return [...pending]
    .filter((p) => now - p.seenAt <= GATHER_SEEN_MS && isCandidate({ ifname: p.link.ifname }, filter).ok)
    .filter((p) => !adds.some((ev) => ev.time >= p.seenAt - 2000 && (p.link.mac && ev.mac ? ev.mac === p.link.mac : ev.ifname === p.link.ifname)))
    .map((p) => p.link);
}

export class KernelEvents implements LinkCallbacks {
  readonly stats = { kernelQueued: 0, kernelDeduped: 0 };
  private readonly pendingAdds = new Map<number, { link: LinkLine; seenAt: number; timer: NodeJS.Timeout }>();
  private readonly pendingLinks = new Map<string, { up: boolean; at: number }>();
  private linkTimer: NodeJS.Timeout | undefined;
  private routingTimer: NodeJS.Timeout | undefined;

  constructor(private readonly host: KernelEventsHost) {}

  stop(): void {
    clearTimeout(this.linkTimer);
    clearTimeout(this.routingTimer);
    for (const p of this.pendingAdds.values()) clearTimeout(p.timer);
  }

  onAdd(link: LinkLine): void {
    if (link.ifname === 'lo' || this.host.stopping()) return;
    const seenAt = Date.now();
    const timer = setTimeout(() => void this.settleAdd(link.index).catch((e) => log('warn', 'kernel add event not queued', { error: oneLine(e) })), SETTLE_MS);
    this.pendingAdds.set(link.index, { link, seenAt, timer });
  }

  onRemove(link: LinkLine): void {
    if (link.ifname === 'lo' || this.host.stopping()) return;
    this.pendingLinks.delete(link.ifname); // its carrier loss on the way out is no link event
    const p = this.pendingAdds.get(link.index);
    if (p) {
      // Came and went within the settle time: udev (if it runs) queues both; we queue neither.
      clearTimeout(p.timer);
      this.pendingAdds.delete(link.index);
      return;
    }
    const seenAt = Date.now();
    setTimeout(() => void this.settle('remove', link, seenAt).catch((e) => log('warn', 'kernel remove event not queued', { error: oneLine(e) })), SETTLE_MS);
  }

  onRename(_from: LinkLine, to: LinkLine): void {
    const p = this.pendingAdds.get(to.index);
    if (p) p.link = { ...p.link, ifname: to.ifname };
  }

  onState(link: LinkLine, up: boolean): void {
    if (this.pendingAdds.has(link.index) || this.host.stopping()) return;
    if (!isCandidate({ ifname: link.ifname }, this.host.config().filter).ok) return;
    this.pendingLinks.set(link.ifname, { up, at: Date.now() });
    clearTimeout(this.linkTimer);
    clearTimeout(this.routingTimer);
    this.linkTimer = setTimeout(() => this.host.links(), LINK_DEBOUNCE_MS);
  }

  /** New links whose udev event is still to come (see awaitingUdev); `queued` = the queue now. */
  awaitingUdev(queued: readonly HotplugEvent[]): LinkLine[] {
    return awaitingUdev(this.pendingAdds.values(), [...queued, ...this.host.claimed()], Date.now(), this.host.config().filter);
  }

  /** The link changes due now, less those a batch just caused (asked when the 'links' job runs). */
  takeLinkChanges(): { ifname: string; up: boolean }[] {
    const changes = [...this.pendingLinks.entries()]
      .filter(([ifname]) => Date.now() - this.host.touchedAt(ifname) > OWN_CHANGE_MS)
      .map(([ifname, c]) => ({ ifname, up: c.up }));
    this.pendingLinks.clear();
    return changes;
  }

  /**
   * Addresses and routes can vanish with no link event (a DHCP client re-acquiring, networkd
   * restarting): a debounced reconcile from cached metadata puts back what is missing. Our own
   * changes trigger one more reconcile that finds nothing to do.
   */
  onRouting(c: RoutingChange): void {
    const cfg = this.host.config();
    if (this.host.stopping() || !cfg.routing.enabled) return;
    if (c.kind !== 'ours-deleted' && !isCandidate({ ifname: c.ifname }, cfg.filter).ok) return;
    clearTimeout(this.routingTimer);
    this.routingTimer = setTimeout(() => this.host.repairRouting(), ROUTING_DEBOUNCE_MS);
  }

  /** Was the same event seen from udev (queued, or already handled) since `seenAt` (with slack)? */
  private async seenFromUdev(action: 'add' | 'remove', ifname: string, mac: string | undefined, seenAt: number): Promise<boolean> {
    const match = (ev: HotplugEvent) => ev.action === action && ev.time >= seenAt - 2000 && (action === 'add' && mac ? ev.mac === mac : ev.ifname === ifname);
    return this.host.claimed().some(match) || (await list()).some(match);
  }

  private async settleAdd(index: number): Promise<void> {
    const p = this.pendingAdds.get(index);
    this.pendingAdds.delete(index);
    if (p) await this.settle('add', p.link, p.seenAt);
  }

  private async settle(action: 'add' | 'remove', link: LinkLine, seenAt: number): Promise<void> {
    if (this.host.stopping()) return;
    const time = () => new Date().toISOString();
    if (await this.seenFromUdev(action, link.ifname, link.mac, seenAt)) {
      this.stats.kernelDeduped++;
      this.host.emit({ type: 'kernel_event', time: time(), action, iface: link.ifname, mac: link.mac, result: 'seen_from_udev' });
      return;
    }
    const ev = validateEvent(
      action === 'add'
        ? { id: newEventId(), action, ifname: link.ifname, mac: link.mac, devpath: await devpathOf(link.ifname), time: seenAt, driver: await driverOf(link.ifname) }
        : { id: newEventId(), action, ifname: link.ifname, mac: link.mac, devpath: `/devices/virtual/net/${link.ifname}`, time: seenAt },
    );
    await enqueue(ev);
    this.stats.kernelQueued++;
    log('info', 'kernel link event queued (not seen from udev)', { action, iface: ev.ifname, mac: ev.mac });
    this.host.emit({ type: 'kernel_event', time: time(), action, iface: ev.ifname, mac: ev.mac, result: 'queued' });
    this.host.drain();
  }
}
