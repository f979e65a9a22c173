/**
 * The event worker: drains the queue under the apply lock.
 *
 *   lock → wait for boot → take every queued event → gate → coalesce → filter
 *        → removes: bring down with the config that still describes them, scrub, re-render
 *        → adds: one crawl; while MACs are missing, cheap probes with backoff (each add's budget
 *          counts from its kernel event), one more crawl + apply as soon as any appears
 *        → ack handled events → release → re-check the queue (an event queued while we
 *          held the lock is seen here, see hook.ts)
 *
 * Events are deleted only after they were handled, so a worker killed with -9 leaves
 * them for the next one, and the kernel drops its lock.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bridge, InstanceSummary, NetworkConfig } from '../../bridge/index.js';
import { startBridge } from '../../bridge/index.js';
import { take, ack, pendingCount, list } from '../events/queue.js';
import { coalesce } from '../events/batch.js';
import type { HotplugEvent } from '../events/event.js';
import { loadKnown, rememberInterface, forgetInterface } from '../events/known.js';
import { isCandidate } from '../filter.js';
import { loadConfig, type Config } from '../config.js';
import { tryLock, acquireLock, type Lock } from '../lock.js';
import { backoffDelay } from '../retry.js';
import { recordEvent, type EventRecord } from './history.js';
import { enabledGate, waitForBoot } from './gate.js';
import { scrubInterface, linkExists } from '../net/teardown.js';
import { reconcile } from '../routing/reconcile.js';
import { removeInterface } from '../routing/cleanup.js';
import { dhclientLeaseGateway } from '../stack/dhclient-lease.js';
import { rehomeDhcpClients } from '../net/dhcp-home.js';
import { recordApply } from '../core/last-apply.js';
import { openInstance } from '../core/instance-record.js';
import { persist as storeInstance } from '../core/refresh.js';
import { interfaceNames } from '../core/apply.js';
import { log, since } from '../util/log.js';
import { oneLine } from '../util/errors.js';
import { isUnsafePath } from '../util/atomic.js';
import { sweepStaleTemps } from '../util/sweep.js';
import { splitByPolicy, runPolicyCommand, eventVars } from '../daemon/policy.js';
import { isBridgeFailure } from '../daemon/bridge.js';
import type { EventPolicy } from '../config.js';

/** Cap of the delay between two cheap MAC probes. */
const PROBE_CAP_MS = 250;

export interface WorkerOptions {
  /** Wait for the lock instead of leaving when another worker holds it. */
  waitForLock?: boolean;
}

/** MACs of the physical interfaces a network config describes. */
export function configMacs(netcfg: NetworkConfig | null): Set<string> {
  const out = new Set<string>();
  if (!netcfg) return out;
  if (netcfg.version === 2) {
    for (const eth of Object.values(netcfg.ethernets ?? {}) as Array<{ match?: { macaddress?: string } }>) {
      if (eth.match?.macaddress) out.add(eth.match.macaddress.toLowerCase());
    }
  } else {
    for (const c of netcfg.config ?? []) if (c.type === 'physical' && typeof c.mac_address === 'string') out.add(c.mac_address.toLowerCase());
  }
  return out;
}

/** What ifupdown recorded in ifstate.<if> ('' when missing or empty). */
function ifupState(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * Interfaces of `netcfg` that exist but ifupdown never brought up (no state in /run/network/ifstate.<if>):
 * rendered by an earlier apply whose add gave up or whose worker died before the bring-up. The
 * ENI activator brings up only what it is asked to, so they would stay down for good. (Other
 * renderers' activators configure every interface on apply.)
 */
export function renderedButDown(netcfg: NetworkConfig, root = process.env.HOTPLUG_ROOT ?? '/'): string[] {
  const state = join(root, 'run/network');
  if (!existsSync(state)) return [];
  // ifup creates ifstate.<if> as its lock when it starts and writes the state into it only when
  // done: an empty one is an ifup that was killed (or an ifdown), not an interface that is up.
  return interfaceNames(netcfg).filter((n) => existsSync(join(root, 'sys/class/net', n)) && !ifupState(join(state, `ifstate.${n}`)));
}

/** The MAC a network config matches interface `name` by. */
export function configMacOf(netcfg: NetworkConfig, name: string): string | undefined {
  if (netcfg.version === 2) {
    const eth = (netcfg.ethernets ?? {})[name] as { match?: { macaddress?: string } } | undefined;
    return eth?.match?.macaddress?.toLowerCase();
  }
  const c = (netcfg.config ?? []).find((x) => x.type === 'physical' && x.name === name);
  return typeof c?.mac_address === 'string' ? c.mac_address.toLowerCase() : undefined;
}

/**
 * Why metadata's entry for the NIC with `mac` was refused (invalid values), if it was and the NIC
 * has no usable config: the entry under its MAC, or an entry under another key whose `mac` leaf
 * names it.
 */
export function refusedFor(mac: string, summary: InstanceSummary, present: Set<string>): string | undefined {
  if (present.has(mac)) return undefined; // refused, but it keeps its previous metadata
  const direct = summary.rejected_nics?.[mac];
  if (direct) return direct;
  for (const [k, e] of Object.entries(summary.rejected_entries ?? {})) {
    if (e.mac === mac && k !== mac) return `its entry ${JSON.stringify(k)}: ${e.why}`;
  }
  return undefined;
}

/** Handles batches of queued events with one (reusable) bridge session; the worker and the daemon share it. */
export class Pipeline {
  crawls = 0;
  probes = 0;
  probeWorks = true;
  bridge: Bridge | undefined;
  /** Called after each event record is written (the daemon streams them to subscribers). */
  onRecord: ((rec: EventRecord) => void) | undefined;
  constructor(public cfg: Config) {}

  async session(): Promise<Bridge> {
    if (!this.bridge) {
      const b = await startBridge();
      try {
        await openInstance(b);
      } catch (e) {
        await b.close();
        throw e;
      }
      this.bridge = b;
    }
    return this.bridge;
  }

  async close(): Promise<void> {
    await this.bridge?.close();
    this.bridge = undefined;
  }

  async rec(ev: HotplugEvent, result: EventRecord['result'], reason?: string): Promise<void> {
    const rec: EventRecord = {
      action: ev.action,
      iface: ev.ifname,
      mac: ev.mac,
      result,
      reason,
      crawls: this.crawls,
      probes: this.probes,
      duration_ms: Math.max(0, Date.now() - ev.time),
      time: new Date().toISOString(),
    };
    await recordEvent(rec);
    this.onRecord?.(rec);
  }

  /** Events whose configured policy (config `events:`) is not 'apply'; see daemon/policy.ts. */
  async handlePolicies(summary: InstanceSummary, other: { ev: HotplugEvent; policy: EventPolicy }[]): Promise<string[]> {
    const done = (ev: HotplugEvent): EventRecord['result'] => (ev.action === 'add' ? 'configured' : 'removed');
    for (const { ev, policy } of other) {
      const c = isCandidate(ev, this.cfg.filter);
      if (!c.ok) {
        await this.rec(ev, 'ignored', c.reason);
      } else if (policy === 'ignore') {
        await this.rec(ev, 'ignored', `events.${ev.action} policy is ignore`);
      } else if (policy === 'reconcile') {
        await this.routes(summary, false);
        await this.rec(ev, done(ev), `events.${ev.action} policy is reconcile: policy routing reconciled only`);
      } else if (policy !== 'apply') {
        const r = await runPolicyCommand(policy.run, eventVars(ev));
        await this.rec(ev, r.ok ? done(ev) : 'failed', `events.${ev.action} policy: ${r.detail}`);
      }
    }
    return other.map((o) => o.ev.id);
  }

  /** Policy routing after an apply; a failure is logged, never fails the event. */
  async routes(summary: InstanceSummary, metadataComplete: boolean): Promise<void> {
    try {
      // reconcile() logs what it changed; only failures need saying again, louder.
      const r = await reconcile({ summary, config: this.cfg, metadataComplete, env: { leaseGateway: (n) => dhclientLeaseGateway(n) } });
      if (r.failed.length) log('warn', 'policy routing: some changes failed', { changes: r.changes.length, failed: r.failed.length });
    } catch (e) {
      log('warn', 'policy routing reconcile failed', { error: oneLine(e) });
    }
  }

  /**
   * Render a config through the distro, persist the datasource and our JSON, and bring up
   * only `bringUp` (as upstream's hook: the other interfaces are already up). Returns the
   * names that failed to come up.
   */
  async applyConfig(b: Bridge, netcfg: NetworkConfig, persist: boolean, bringUp: string[]): Promise<string[]> {
    const t0 = performance.now();
    if (persist) await storeInstance(b);
    await b.applyNetwork(netcfg, false);
    const stale = renderedButDown(netcfg).filter((n) => !bringUp.includes(n));
    if (stale.length) log('info', 'bringing up interfaces rendered earlier but never brought up', { interfaces: stale.join(',') });
    const all = [...bringUp, ...stale];
    const up = all.length ? await b.bringUp(all) : {};
    await rehomeDhcpClients(Object.keys(up).filter((n) => up[n]));
    for (const n of stale) {
      const mac = up[n] ? configMacOf(netcfg, n) : undefined;
      if (mac) await rememberInterface(n, { mac, addedAt: Date.now() }).catch(() => {});
    }
    const failed = Object.entries(up).filter(([, ok]) => !ok).map(([n]) => n);
    await recordApply({
      time: new Date().toISOString(),
      result: failed.length ? 'failed' : 'ok',
      duration_ms: since(t0),
      refreshed: persist,
      interfaces: interfaceNames(netcfg),
      error: failed.length ? `activator failed to bring up ${failed.join(', ')}` : undefined,
    });
    return failed;
  }

  /**
   * Tear removed NICs down, then re-render without them from cached metadata (no crawl: the
   * device being gone is authoritative, even while the metadata service still lists it), and
   * only then record them as removed.
   */
  async handleRemoves(b: Bridge, removes: HotplugEvent[], known: Awaited<ReturnType<typeof loadKnown>>): Promise<{ handled: string[]; failed: boolean }> {
    const outcome: { ev: HotplugEvent; error?: string }[] = [];
    for (const ev of removes) {
      const mac = ev.mac ?? known[ev.ifname]?.mac;
      try {
        // Down first, while the rendered config still has the stanza (upstream 22.4 did it
        // the other way round, so ifdown failed and dhclient/ifstate were left behind).
        let t = performance.now();
        // With the device still present the activator brings it down; once it is gone, ifdown
        // can only release a lease it cannot send (~1 s in dhclient -r): the scrub below stops
        // the DHCP client and clears the activator's state directly.
        if (await linkExists(ev.ifname)) {
          await b.bringDown(ev.ifname).catch((e) => {
            if (isBridgeFailure(e)) throw e; // the whole batch is re-run (events still queued)
            log('debug', 'activator bring-down failed', { iface: ev.ifname, error: oneLine(e) });
          });
          log('debug', 'brought down', { iface: ev.ifname, duration_ms: since(t) });
        }
        t = performance.now();
        await scrubInterface(ev.ifname);
        log('debug', 'scrubbed', { iface: ev.ifname, duration_ms: since(t) });
        // Rules, routes and addresses we added for it go too (only ours: protocol 199 + state file).
        await removeInterface(ev.ifname).catch((e) => log('warn', 'policy routing cleanup failed', { iface: ev.ifname, error: oneLine(e) }));
        await forgetInterface(ev.ifname);
        outcome.push({ ev: { ...ev, mac } });
      } catch (e) {
        if (isBridgeFailure(e)) throw e;
        outcome.push({ ev: { ...ev, mac }, error: oneLine(e) });
      }
    }
    let renderError: string | undefined;
    try {
      const t = performance.now();
      const r = await b.rederive();
      log('debug', 'rederived', { duration_ms: since(t) });
      if (r.network_config) await this.applyConfig(b, r.network_config, true, []);
      await this.routes(r.summary, true);
    } catch (e) {
      if (isBridgeFailure(e)) throw e;
      renderError = `could not re-render the config without it: ${oneLine(e)}`;
    }
    for (const o of outcome) {
      const err = o.error ?? renderError;
      await this.rec(o.ev, err ? 'failed' : 'removed', err);
    }
    return { handled: outcome.map((o) => o.ev.id), failed: outcome.some((o) => o.error) || !!renderError };
  }

  /**
   * Configure the added NICs as soon as metadata lists them. Returns the ids handled
   * (configured or given up); adds still waiting when new events arrive stay queued.
   */
  async handleAdds(b: Bridge, adds: HotplugEvent[], claimedIds: Set<string>): Promise<{ handled: string[]; failed: boolean }> {
    const pending = new Map<string, HotplugEvent>();
    const handled: string[] = [];
    let failed = false;
    for (const ev of adds) {
      if (!ev.mac) {
        await this.rec(ev, 'failed', 'no MAC known for the interface');
        handled.push(ev.id);
        failed = true;
        continue;
      }
      pending.set(ev.mac, ev);
    }
    const budgetMs = this.cfg.retry.budget_seconds * 1000;
    // Keys of metadata entries that are not MACs, as of the last crawl (or the probe that asked
    // for it): a probe listing a new one asks for a crawl, since no MAC of ours may ever appear.
    const seenOthers = new Set<string>();
    const giveUp = async (ev: HotplugEvent, reason: string): Promise<void> => {
      pending.delete(ev.mac!);
      handled.push(ev.id);
      failed = true;
      await this.rec(ev, 'failed', reason);
    };

    const crawlAndApply = async (): Promise<void> => {
      // The network subtree is all a NIC needs; a full crawl only where that is unsupported.
      const net = await b.refreshNetwork();
      const r = net.supported ? net : await b.refresh();
      this.crawls++;
      const present = configMacs(r.network_config);
      for (const ev of [...pending.values()]) {
        const why = refusedFor(ev.mac!, r.summary, present);
        if (why) await giveUp(ev, `metadata refused: ${why}`);
      }
      // Entries whose key is no MAC at all can never match a device. When there are at least as
      // many of them as added NICs metadata has no valid entry for, those NICs will never appear
      // (metadata is malformed for them): fail now, with the refusal, instead of after the budget.
      const entries = Object.entries(r.summary.rejected_entries ?? {});
      for (const [k, e] of entries) if (!e.key_is_mac) seenOthers.add(k);
      const orphans = entries.filter(([, e]) => !e.key_is_mac && !e.mac);
      const unlisted = [...pending.values()].filter((ev) => !present.has(ev.mac!) && !(ev.mac! in r.summary.nics));
      if (unlisted.length && orphans.length >= unlisted.length) {
        const desc = orphans.map(([k, e]) => `${JSON.stringify(k)}: ${e.why}`).join('; ');
        for (const ev of unlisted) {
          await giveUp(ev, `metadata refused: it has no valid entry for MAC ${ev.mac}, only entries no device can match (${desc})`);
        }
      }
      const ready = [...pending.values()].filter((ev) => present.has(ev.mac!));
      if (!ready.length) return;
      let failedUp: string[];
      try {
        failedUp = await this.applyConfig(b, r.network_config, true, ready.map((ev) => ev.ifname));
      } catch (e) {
        // A planted symlink (or a directory …) where we store the config: no retry can fix that.
        if (!isUnsafePath(e)) throw e;
        for (const ev of ready) await giveUp(ev, oneLine(e));
        return;
      }
      await this.routes(r.summary, true);
      for (const ev of ready) {
        pending.delete(ev.mac!);
        if (failedUp.includes(ev.ifname)) {
          failed = true;
          handled.push(ev.id);
          await this.rec(ev, 'failed', 'the network activator failed to bring it up');
          continue;
        }
        const nic = r.summary.nics[ev.mac!];
        const dn = nic?.device_number != null ? Number(nic.device_number) : undefined;
        await rememberInterface(ev.ifname, { mac: ev.mac!, addedAt: Date.now(), deviceNumber: Number.isSafeInteger(dn) ? dn : undefined });
        await this.rec(ev, 'configured');
        handled.push(ev.id);
      }
    };

    if (pending.size) {
      try {
        await crawlAndApply();
      } catch (e) {
        // A dead or stuck Python is not "metadata lagging": leave, the events stay queued.
        if (isBridgeFailure(e)) throw e;
        log('warn', 'refresh or apply failed; will retry', { error: oneLine(e) });
      }
    }
    let attempt = 0;
    let prev = 0;
    while (pending.size) {
      // Give up on adds whose own budget (from their kernel event) is spent.
      const now = Date.now();
      for (const ev of [...pending.values()]) {
        if (now - ev.time >= budgetMs) {
          pending.delete(ev.mac!);
          handled.push(ev.id);
          failed = true;
          await this.rec(ev, 'ignored', `MAC ${ev.mac} not in metadata after ${this.cfg.retry.budget_seconds}s; left unconfigured`);
        }
      }
      if (!pending.size) break;
      const deadline = Math.min(...[...pending.values()].map((ev) => ev.time + budgetMs));
      attempt++;
      // A probe is one small request, so poll often (NIC configured within ~PROBE_CAP_MS of
      // its metadata appearing); full crawls happen only when a probe shows a MAC, or, when
      // probing is unsupported or the service fails, with the configured backoff up to max_ms.
      const cap = this.probeWorks ? Math.min(PROBE_CAP_MS, this.cfg.retry.max_ms) : this.cfg.retry.max_ms;
      const delay = Math.min(Math.max(0, deadline - Date.now()), backoffDelay(attempt, prev, { initialMs: this.cfg.retry.initial_ms, maxMs: cap, factor: 2, jitter: 'full' }));
      prev = delay;
      await new Promise((r) => setTimeout(r, delay));
      // New events queued meanwhile: return so the caller coalesces them with what is pending.
      if ((await list()).some((ev) => !claimedIds.has(ev.id))) break;
      try {
        const probe = await b.probeMacs(1);
        this.probes++;
        this.probeWorks = probe.supported;
        const newOthers = probe.others.filter((k) => !seenOthers.has(k));
        newOthers.forEach((k) => seenOthers.add(k)); // one crawl per new entry, even if the crawl drops it
        if (!probe.supported || [...pending.keys()].some((m) => probe.macs.includes(m)) || newOthers.length) await crawlAndApply();
      } catch (e) {
        if (isBridgeFailure(e)) throw e;
        this.probeWorks = false;
        log('warn', 'metadata not reachable; will retry', { error: oneLine(e), attempt });
      }
    }
    return { handled, failed };
  }

  /** Handle one snapshot of the queue. Returns false if something failed. */
  async batch(events: HotplugEvent[]): Promise<boolean> {
    this.crawls = 0;
    this.probes = 0;
    const b = await this.session();
    const summary = await b.summary();
    const gate = enabledGate(summary);
    if (!gate.open) {
      for (const ev of events) await this.rec(ev, 'skipped', gate.reason);
      await ack(events.map((e) => e.id));
      return true;
    }
    const { apply, other } = splitByPolicy(events, this.cfg);
    const policyHandled = other.length ? await this.handlePolicies(summary, other) : [];
    const known = await loadKnown();
    const batch = coalesce(apply, known);
    const handled = new Set<string>([...policyHandled, ...batch.ids.filter((id) => ![...batch.adds.values(), ...batch.removes.values()].some((e) => e.id === id))]);
    const pick = async (evs: Iterable<HotplugEvent>) => {
      const ok: HotplugEvent[] = [];
      for (const ev of evs) {
        const c = isCandidate(ev, this.cfg.filter);
        if (c.ok) ok.push(ev);
        else {
          await this.rec(ev, 'ignored', c.reason);
          handled.add(ev.id);
        }
      }
      return ok;
    };
    const removes = await pick(batch.removes.values());
    const adds = await pick(batch.adds.values());
    let ok = true;

    if (removes.length) {
      const r = await this.handleRemoves(b, removes, known);
      r.handled.forEach((id) => handled.add(id));
      ok = ok && !r.failed;
    }
    if (adds.length) {
      const r = await this.handleAdds(b, adds, new Set([...batch.ids, ...policyHandled]));
      r.handled.forEach((id) => handled.add(id));
      ok = ok && !r.failed;
    }
    await ack(handled);
    return ok;
  }
}

export async function runWorker(opts: WorkerOptions = {}): Promise<number> {
  const cfg = await loadConfig();
  let lock: Lock | null = opts.waitForLock ? await acquireLock({ timeoutMs: 600_000 }) : await tryLock();
  if (!lock) {
    log('debug', 'another worker holds the lock; it will see our events');
    return 0;
  }
  // Temp files of writers killed mid-write (one worker at a time does this: we hold the lock).
  await sweepStaleTemps();
  const run = new Pipeline(cfg);
  let rc = 0;
  try {
    for (;;) {
      await waitForBoot(250, () => log('info', 'waiting for cloud-init to finish booting; events stay queued'));
      const claim = await take();
      if (claim.events.length) {
        try {
          if (!(await run.batch(claim.events))) rc = 1;
        } catch (e) {
          // Unexpected (bridge died, cache unreadable): keep the events, report, stop.
          log('error', 'worker failed; events stay queued', { error: oneLine(e), queued: claim.events.length });
          rc = 1;
          break;
        }
        continue;
      }
      // Release, then look again: a hook that saw our lock held enqueued before looking,
      // so an event is either seen here or its hook found the lock free and started a worker.
      await lock.release();
      lock = null;
      if ((await pendingCount()) === 0) break;
      lock = await tryLock();
      if (!lock) break;
    }
  } finally {
    await run.close();
    await lock?.release();
  }
  return rc;
}
