/**
 * `hotplug daemon`: the warm, event-driven service.
 *
 *   socket (JSON lines) ─ kick ───────────┐
 *   ip -o monitor link ─ new/deleted link ┼─► jobs, one at a time ─► Pipeline.batch (warm bridge)
 *                      └ link down/up ────┤                         routing reconcile
 *   metadata poller (fingerprint) ────────┘                         render + reconcile
 *
 * Invariants:
 *  - One apply at a time across daemon, workers and the CLI: every job that changes the system
 *    takes the flock apply lock (src/lock.ts) for its duration only, and after releasing it looks at
 *    the queue again (a worker that found the lock held left its events to us).
 *  - The queue on disk is the source of truth: events are acked by the pipeline only after handling,
 *    so kill -9 of the daemon loses nothing; the next daemon (or worker) handles them.
 *  - The udev program (bin/hotplug-udev-hook) starts no worker while /run/cloud-hotplug/daemon.lock
 *    is held: the daemon holds it (flock, released by the kernel if it dies) for its whole life and
 *    watches the queue directory (inotify), having started the watch BEFORE taking the lock. On
 *    shutdown it releases the lock BEFORE its last look at the queue and leaves anything found
 *    there to a one-shot worker. A kick on the socket (`hotplug handle`) is the same, faster.
 *  - The Python bridge stays warm; its death or a stuck call restarts it and the batch is re-run.
 */
import { mkdir, readdir, readFile, realpath, unlink } from 'node:fs/promises';
import { existsSync, mkdirSync, openSync, closeSync, watch, type FSWatcher } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { basename, dirname, join } from 'node:path';
import type { Bridge, InstanceSummary, NetworkConfig } from '../../bridge/index.js';
import { loadConfig, type Config, type EventPolicy } from '../config.js';
import { paths } from '../paths.js';
import { acquireLock, tryLock, type Lock } from '../lock.js';
import { take, list, enqueue, pendingCount } from '../events/queue.js';
import { newEventId, validateEvent, type HotplugEvent, IFNAME_RE } from '../events/event.js';
import { loadKnown, rememberInterface } from '../events/known.js';
import { Pipeline } from '../pipeline/worker.js';
import type { EventRecord } from '../pipeline/history.js';
import { enabledGate } from '../pipeline/gate.js';
import { bootFinished } from '../core/boot.js';
import { applyNetwork } from '../core/apply.js';
import { refreshMetadata } from '../core/refresh.js';
import { reconcile } from '../routing/reconcile.js';
import { dhclientLeaseGateway } from '../stack/dhclient-lease.js';
import { ROUTING_PROTO } from '../routing/state.js';
import { isCandidate } from '../filter.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { sweepStaleTemps } from '../util/sweep.js';
import { log, since } from '../util/log.js';
import { oneLine, UserError } from '../util/errors.js';
import { SocketServer, type Reply } from './server.js';
import type { Request } from './protocol.js';
import { advertFile, readAdvert } from './kick.js';
import { BridgeManager, isBridgeFailure } from './bridge.js';
import { LinkMonitor, type LinkLine, type RoutingChange } from './monitor.js';
import { fingerprint, describeChange, namesByMac, pollDelay } from './fingerprint.js';
import { describePolicy, runPolicyCommand } from './policy.js';

/** A kernel link event waits this long for udev's copy before the daemon queues its own. */
export const SETTLE_MS = 1000;
/** Link down/up flaps within this window count once. */
const LINK_DEBOUNCE_MS = 500;
/** Address and route churn comes in bursts (a DHCP exchange, networkd configuring links). */
const ROUTING_DEBOUNCE_MS = 1000;
const ROUTING_REPAIR = 'policy routing repair';
/** Link state changes of interfaces a batch just handled are the batch's own doing. */
const OWN_CHANGE_MS = 3000;
const LOCK_WAIT_MS = 10 * 60_000;
const RETRY_MIN_MS = 2000;
const RETRY_MAX_MS = 300_000;
const RING = 50;
/** Safety net behind the queue watch: look at the queue this often anyway. */
const SWEEP_MS = 15_000;

/** Held by the running daemon; the udev program starts no worker while it is held. */
export const daemonLockFile = (): string => join(paths.runDir, 'daemon.lock');
const CLI_JS = fileURLToPath(new URL('../cli.js', import.meta.url));

export interface DaemonOptions {
  configPath?: string;
  /** Socket path instead of config daemon.socket (tests). */
  socket?: string;
  /** Do not start `ip monitor` (tests). */
  monitor?: boolean;
  /** Do not poll metadata (tests). */
  poll?: boolean;
  bridges?: BridgeManager;
}

/** Everything the daemon reports (subscribers and status last_events). */
export type DaemonRecord =
  | ({ type: 'event' } & EventRecord)
  | { type: 'metadata_change'; time: string; result: 'applied' | 'ignored' | 'failed' | 'skipped'; change: string; policy: string; duration_ms: number; reason?: string; brought_up?: string[]; routing_changes?: number }
  | { type: 'link'; time: string; iface: string; state: 'up' | 'down'; policy: string; result: 'reconciled' | 'applied' | 'ignored' | 'ran' | 'failed'; reason?: string; routing_changes?: number }
  | { type: 'kernel_event'; time: string; action: 'add' | 'remove'; iface: string; mac?: string; result: 'queued' | 'seen_from_udev' }
  | { type: 'bridge'; time: string; what: 'died' | 'restarted' | 'timeout'; reason: string; restarts: number }
  | { type: 'config'; time: string; result: 'reloaded' | 'rejected'; reason?: string }
  | { type: 'routing'; time: string; result: 'repaired' | 'failed'; changes: number; failed: number };

type JobKind = 'drain' | 'request' | 'links' | 'routing' | 'poll' | 'bridge';
const PRIORITY: Record<JobKind, number> = { drain: 0, bridge: 1, request: 2, links: 3, routing: 3, poll: 4 };
interface Job {
  kind: JobKind;
  what: string;
  run: () => Promise<void>;
  reject?: (e: Error) => void;
}

const now = () => new Date().toISOString();
const mb = (b: number | null | undefined) => (b == null ? null : Math.round((b / 1048576) * 10) / 10);
const sysRoot = () => process.env.HOTPLUG_ROOT ?? '/';

async function devpathOf(ifname: string): Promise<string> {
  try {
    const p = await realpath(join(sysRoot(), 'sys/class/net', ifname));
    const i = p.indexOf('/devices/');
    if (i >= 0) return p.slice(i);
  } catch {
    /* gone already */
  }
  return `/devices/virtual/net/${ifname}`;
}

async function driverOf(ifname: string): Promise<string | undefined> {
  try {
    return basename(await realpath(join(sysRoot(), 'sys/class/net', ifname, 'device/driver')));
  } catch {
    return undefined;
  }
}

/** MAC → ifname of the links present now (sysfs). */
async function presentLinks(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const dir = join(sysRoot(), 'sys/class/net');
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (!IFNAME_RE.test(n)) continue;
    const mac = (await readFile(join(dir, n, 'address'), 'utf8').catch(() => '')).trim().toLowerCase();
    if (mac && !out.has(mac)) out.set(mac, n);
  }
  return out;
}

export class Daemon {
  cfg: Config;
  readonly pipeline: Pipeline;
  readonly bridges: BridgeManager;
  private server: SocketServer | undefined;
  private monitor: LinkMonitor | undefined;
  private readonly opts: DaemonOptions;
  state: 'starting' | 'idle' | 'busy' | 'stopping' = 'starting';
  current: string | null = null;
  readonly startedAt = Date.now();
  readyAt: number | null = null;
  private jobs: Job[] = [];
  private pumping: Promise<void> | null = null;
  private stopping = false;
  private readonly ring: DaemonRecord[] = [];
  private readonly subscribers = new Set<(m: Reply) => void>();
  private readonly claimed: HotplugEvent[] = [];
  private readonly pendingKernel = new Map<number, { link: LinkLine; seenAt: number; timer: NodeJS.Timeout }>();
  private readonly pendingLinks = new Map<string, { up: boolean; at: number }>();
  private linkTimer: NodeJS.Timeout | undefined;
  private routingTimer: NodeJS.Timeout | undefined;
  private readonly touched = new Map<string, number>();
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = RETRY_MIN_MS;
  private bootWait = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private queueWatch: FSWatcher | undefined;
  private daemonLock: Lock | null = null;
  private summaryValue: InstanceSummary | undefined;
  /** When `summary` was last set (read or re-read from cloud-init), for status. */
  private summaryAt: number | null = null;
  get summary(): InstanceSummary | undefined {
    return this.summaryValue;
  }
  set summary(s: InstanceSummary | undefined) {
    this.summaryValue = s;
    this.summaryAt = s ? Date.now() : null;
  }
  baseline: string | undefined;
  readonly poll = { last: null as string | null, lastChange: null as string | null, lastError: null as string | null, errors: 0, nextAt: null as number | null, polls: 0, lastMs: null as number | null };
  readonly stats = { kicks: 0, batches: 0, bridgeFailures: 0, kernelQueued: 0, kernelDeduped: 0 };
  private reload: { time: string; ok: boolean; error?: string } | null = null;
  private socketPath: string;

  constructor(cfg: Config, opts: DaemonOptions = {}) {
    this.cfg = cfg;
    this.opts = opts;
    this.socketPath = opts.socket ?? cfg.daemon.socket;
    this.pipeline = new Pipeline(cfg);
    this.pipeline.onRecord = (rec) => this.emit({ type: 'event', ...rec });
    this.bridges = opts.bridges ?? new BridgeManager();
    this.bridges.onDeath = (why) => {
      log('error', 'python bridge died; restarting it', { reason: why });
      this.emit({ type: 'bridge', time: now(), what: 'died', reason: why, restarts: this.bridges.restarts });
      // Warm again before the next event needs it (a batch in flight restarts it itself).
      this.schedule('bridge', 'restart python bridge', async () => {
        await this.bridges.get();
      });
    };
  }

  // ------------------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    // Watch first, lock second: an event queued after the lock is taken is seen by the watch; one
    // queued before found the lock free and its hook started a worker.
    await mkdir(paths.queueDir, { recursive: true, mode: 0o700 });
    this.queueWatch = watch(paths.queueDir, (_type, file) => {
      if (file && !String(file).startsWith('.') && String(file).endsWith('.json') && existsSync(join(paths.queueDir, String(file)))) {
        this.schedule('drain', 'drain queue', () => this.drain());
      }
    });
    this.queueWatch.on('error', (e) => log('warn', 'queue watch failed; relying on the periodic sweep', { error: oneLine(e) }));
    this.daemonLock = await tryLock(daemonLockFile());
    if (!this.daemonLock) throw new UserError(`another daemon already runs (it holds ${daemonLockFile()})`);
    // Temp files of writers killed mid-write (before this start, or by the daemon it replaces).
    await sweepStaleTemps();
    this.sweepTimer = setInterval(() => {
      void pendingCount()
        .then((n) => n > 0 && !this.pumping && this.schedule('drain', 'drain queue (sweep)', () => this.drain()))
        .catch(() => {});
    }, SWEEP_MS);
    this.server = new SocketServer(this.socketPath, { handle: (r) => this.handle(r), subscribe: (send) => this.subscribe(send) });
    await this.server.listen();
    await writeJsonAtomic(advertFile(), { pid: process.pid, socket: this.socketPath, started: new Date(this.startedAt).toISOString() }, 0o644);
    try {
      const b = await this.bridges.get();
      await this.refreshBaseline(b);
    } catch (e) {
      // No cache yet (early boot) or a broken one: events stay queued; retried when needed.
      log('warn', 'python bridge not ready yet; will retry when needed', { error: oneLine(e) });
    }
    if (this.opts.monitor !== false) {
      this.monitor = new LinkMonitor({
        onAdd: (l) => this.kernelAdd(l),
        onRemove: (l) => this.kernelRemove(l),
        onRename: (_from, to) => {
          const p = this.pendingKernel.get(to.index);
          if (p) p.link = { ...p.link, ifname: to.ifname };
        },
        onState: (l, up) => this.linkState(l, up),
        onRouting: (c) => this.routingChanged(c),
      }, { routingProto: ROUTING_PROTO });
      await this.monitor.start().catch((e) => log('warn', 'ip monitor did not start cleanly; kernel link events may be missed until it restarts', { error: oneLine(e) }));
    }
    this.schedule('drain', 'drain queue', () => this.drain());
    if (this.opts.poll !== false) this.armPoll(true);
    this.state = this.jobs.length ? 'busy' : 'idle';
    this.readyAt = Date.now();
  }

  /** SIGTERM: finish the current job, then leave (the queue stays on disk). */
  async stop(): Promise<void> {
    if (this.stopping) return this.pumping ?? undefined;
    this.stopping = true;
    this.state = 'stopping';
    log('info', 'daemon stopping: finishing the current job', { current: this.current ?? 'none' });
    clearTimeout(this.pollTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.linkTimer);
    clearTimeout(this.routingTimer);
    clearInterval(this.sweepTimer);
    this.queueWatch?.close();
    for (const p of this.pendingKernel.values()) clearTimeout(p.timer);
    this.monitor?.stop();
    for (const j of this.jobs) j.reject?.(new Error('daemon stopping'));
    this.jobs = [];
    await this.pumping;
    await this.server?.close();
    const ad = readAdvert();
    if (ad?.pid === process.pid) await unlink(advertFile()).catch(() => {});
    await this.bridges.stop();
    // Release, then look (see the invariants): events queued from now on start their own worker.
    if (this.daemonLock) {
      await this.daemonLock.release();
      this.daemonLock = null;
      const left = await pendingCount().catch(() => 0);
      if (left > 0) this.startWorker(left);
    }
    log('info', 'daemon stopped');
  }

  /** A one-shot worker for what is still queued when the daemon leaves. */
  private startWorker(queued: number): void {
    try {
      mkdirSync(dirname(paths.logFile), { recursive: true });
      const fd = openSync(paths.logFile, 'a', 0o640);
      const child = spawn(process.execPath, [CLI_JS, 'worker'], { detached: true, stdio: ['ignore', fd, fd] });
      closeSync(fd);
      child.unref();
      log('info', 'events still queued; started a worker for them', { queued, worker_pid: child.pid });
    } catch (e) {
      log('warn', 'events stay queued for the next worker or daemon', { queued, error: oneLine(e) });
    }
  }

  /** SIGHUP: re-read the config; an invalid one is logged and the old one kept. */
  async reloadConfig(): Promise<boolean> {
    let next: Config;
    try {
      next = await loadConfig(this.opts.configPath);
    } catch (e) {
      const error = oneLine(e);
      this.reload = { time: now(), ok: false, error };
      log('error', 'config reload failed; keeping the old config', { error });
      this.emit({ type: 'config', time: now(), result: 'rejected', reason: error });
      return false;
    }
    const old = this.cfg;
    this.cfg = next;
    this.pipeline.cfg = next;
    this.reload = { time: now(), ok: true };
    log('info', 'config reloaded', {
      poll_interval_seconds: next.daemon.poll_interval_seconds,
      socket: next.daemon.socket,
      events: Object.entries(next.events).map(([k, v]) => `${k}=${describePolicy(v)}`).join(','),
    });
    this.emit({ type: 'config', time: now(), result: 'reloaded' });
    if (!this.opts.socket && next.daemon.socket !== old.daemon.socket) {
      // Move the socket: new one first, then drop the old one.
      const fresh = new SocketServer(next.daemon.socket, { handle: (r) => this.handle(r), subscribe: (send) => this.subscribe(send) });
      try {
        await fresh.listen();
        const prev = this.server;
        this.server = fresh;
        this.socketPath = next.daemon.socket;
        await writeJsonAtomic(advertFile(), { pid: process.pid, socket: this.socketPath, started: new Date(this.startedAt).toISOString() }, 0o644);
        await prev?.close();
      } catch (e) {
        log('error', 'could not move the socket; keeping the old one', { error: oneLine(e), socket: next.daemon.socket });
      }
    }
    if (next.daemon.poll_interval_seconds !== old.daemon.poll_interval_seconds && this.opts.poll !== false) this.armPoll(false);
    return true;
  }

  // ------------------------------------------------------------------------------ jobs

  private schedule(kind: JobKind, what: string, run: () => Promise<void>, reject?: (e: Error) => void): void {
    if (this.stopping) {
      reject?.(new Error('daemon stopping'));
      return;
    }
    if (kind !== 'request' && this.jobs.some((j) => j.kind === kind)) return; // already due
    this.jobs.push({ kind, what, run, reject });
    this.pump();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = (async () => {
      while (this.jobs.length && !this.stopping) {
        this.jobs.sort((a, b) => PRIORITY[a.kind] - PRIORITY[b.kind]);
        const job = this.jobs.shift()!;
        this.state = 'busy';
        this.current = job.what;
        try {
          await job.run();
        } catch (e) {
          log('error', `${job.what} failed`, { error: oneLine(e) });
        }
        this.current = null;
      }
      if (!this.stopping) this.state = 'idle';
      this.pumping = null;
    })();
  }

  /** Run `fn` under the apply lock; afterwards look at the queue (see the invariants above). */
  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    const lock: Lock = await acquireLock({ timeoutMs: LOCK_WAIT_MS });
    try {
      return await fn();
    } finally {
      await lock.release();
      if ((await pendingCount().catch(() => 0)) > 0) this.schedule('drain', 'drain queue', () => this.drain());
    }
  }

  /** `fn` with the warm bridge; a dead or stuck bridge is restarted and `fn` run once more. */
  private async withBridge<T>(what: string, fn: (b: Bridge) => Promise<T>, attempts = 3): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const b = await this.bridges.get();
      this.pipeline.bridge = b;
      try {
        const r = await fn(b);
        this.bridges.noteOwnWrites();
        return r;
      } catch (e) {
        if (!isBridgeFailure(e) || attempt >= attempts) throw e;
        this.stats.bridgeFailures++;
        const reason = oneLine(e);
        log('error', `python bridge failed during ${what}; restarting it and running it again`, { kind: e.kind, error: reason, attempt });
        await this.bridges.restart(reason);
        this.emit({ type: 'bridge', time: now(), what: e.kind === 'BridgeTimeout' ? 'timeout' : 'restarted', reason, restarts: this.bridges.restarts });
      }
    }
  }

  private async refreshBaseline(b: Bridge): Promise<void> {
    const s = await b.summary();
    this.summary = s;
    this.baseline = fingerprint(s);
  }

  // ------------------------------------------------------------------------------ the queue

  private async drain(): Promise<void> {
    for (;;) {
      if (this.stopping) return;
      if ((await pendingCount()) === 0) return;
      if (!bootFinished()) {
        // Not blocking the job loop: status, requests and polls go on; look again shortly.
        if (!this.bootWait) log('info', 'waiting for cloud-init to finish booting; events stay queued');
        this.bootWait = true;
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.schedule('drain', 'drain queue', () => this.drain()), 250);
        return;
      }
      this.bootWait = false;
      let outcome: 'done' | 'retry' = 'done';
      const lock = await acquireLock({ timeoutMs: LOCK_WAIT_MS });
      try {
        const claim = await take();
        if (!claim.events.length) return;
        this.noteClaimed(claim.events);
        outcome = await this.batch(claim.events);
      } finally {
        await lock.release();
      }
      if (outcome === 'retry') {
        this.retryLater();
        return;
      }
      this.retryMs = RETRY_MIN_MS;
      // Loop: events queued while we held the lock are handled now (release first, then look).
    }
  }

  private retryLater(): void {
    clearTimeout(this.retryTimer);
    const ms = this.retryMs;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    log('warn', 'events stay queued; retrying', { in_ms: ms });
    this.retryTimer = setTimeout(() => this.schedule('drain', 'drain queue (retry)', () => this.drain()), ms);
  }

  private async batch(events: HotplugEvent[]): Promise<'done' | 'retry'> {
    const t0 = performance.now();
    this.stats.batches++;
    for (let attempt = 1; ; attempt++) {
      try {
        const b = await this.bridges.get();
        this.pipeline.bridge = b;
        await this.pipeline.batch(events);
        this.bridges.noteOwnWrites();
        for (const ev of events) this.touched.set(ev.ifname, Date.now());
        await this.refreshBaseline(b).catch(() => {});
        log('debug', 'batch done', { events: events.length, duration_ms: since(t0) });
        return 'done';
      } catch (e) {
        if (isBridgeFailure(e) && attempt < 3) {
          this.stats.bridgeFailures++;
          const reason = oneLine(e);
          log('error', 'python bridge failed mid-batch; restarting it and re-running the batch (events are still queued)', { kind: e.kind, error: reason, attempt });
          await this.bridges.restart(reason);
          this.emit({ type: 'bridge', time: now(), what: e.kind === 'BridgeTimeout' ? 'timeout' : 'restarted', reason, restarts: this.bridges.restarts });
          events = (await take()).events; // what is still queued: nothing was acked
          if (!events.length) return 'done';
          this.noteClaimed(events);
          continue;
        }
        log('error', 'batch failed; events stay queued', { error: oneLine(e), queued: events.length });
        return 'retry';
      }
    }
  }

  private noteClaimed(events: HotplugEvent[]): void {
    this.claimed.push(...events);
    if (this.claimed.length > 200) this.claimed.splice(0, this.claimed.length - 200);
  }

  // ------------------------------------------------------------------------------ kernel link events

  private kernelAdd(link: LinkLine): void {
    if (link.ifname === 'lo' || this.stopping) return;
    const seenAt = Date.now();
    const timer = setTimeout(() => void this.settleAdd(link.index).catch((e) => log('warn', 'kernel add event not queued', { error: oneLine(e) })), SETTLE_MS);
    this.pendingKernel.set(link.index, { link, seenAt, timer });
  }

  private kernelRemove(link: LinkLine): void {
    if (link.ifname === 'lo' || this.stopping) return;
    this.pendingLinks.delete(link.ifname); // its carrier loss on the way out is no link event
    const p = this.pendingKernel.get(link.index);
    if (p) {
      // Came and went within the settle time: udev (if it runs) queues both; we queue neither.
      clearTimeout(p.timer);
      this.pendingKernel.delete(link.index);
      return;
    }
    const seenAt = Date.now();
    setTimeout(() => void this.settleRemove(link, seenAt).catch((e) => log('warn', 'kernel remove event not queued', { error: oneLine(e) })), SETTLE_MS);
  }

  /** Was the same event seen from udev (queued, or already handled) since `seenAt` (with slack)? */
  private async seenFromUdev(action: 'add' | 'remove', ifname: string, mac: string | undefined, seenAt: number): Promise<boolean> {
    const match = (ev: HotplugEvent) => ev.action === action && ev.time >= seenAt - 2000 && (action === 'add' && mac ? ev.mac === mac : ev.ifname === ifname);
    return this.claimed.some(match) || (await list()).some(match);
  }

  private async settleAdd(index: number): Promise<void> {
    const p = this.pendingKernel.get(index);
    this.pendingKernel.delete(index);
    if (!p || this.stopping) return;
    const { link, seenAt } = p;
    if (await this.seenFromUdev('add', link.ifname, link.mac, seenAt)) {
      this.stats.kernelDeduped++;
      this.emit({ type: 'kernel_event', time: now(), action: 'add', iface: link.ifname, mac: link.mac, result: 'seen_from_udev' });
      return;
    }
    const ev = validateEvent({ id: newEventId(), action: 'add', ifname: link.ifname, mac: link.mac, devpath: await devpathOf(link.ifname), time: seenAt, driver: await driverOf(link.ifname) });
    await enqueue(ev);
    this.stats.kernelQueued++;
    log('info', 'kernel link event queued (not seen from udev)', { action: 'add', iface: ev.ifname, mac: ev.mac });
    this.emit({ type: 'kernel_event', time: now(), action: 'add', iface: ev.ifname, mac: ev.mac, result: 'queued' });
    this.schedule('drain', 'drain queue', () => this.drain());
  }

  private async settleRemove(link: LinkLine, seenAt: number): Promise<void> {
    if (this.stopping) return;
    if (await this.seenFromUdev('remove', link.ifname, link.mac, seenAt)) {
      this.stats.kernelDeduped++;
      this.emit({ type: 'kernel_event', time: now(), action: 'remove', iface: link.ifname, mac: link.mac, result: 'seen_from_udev' });
      return;
    }
    const ev = validateEvent({ id: newEventId(), action: 'remove', ifname: link.ifname, mac: link.mac, devpath: `/devices/virtual/net/${link.ifname}`, time: seenAt });
    await enqueue(ev);
    this.stats.kernelQueued++;
    log('info', 'kernel link event queued (not seen from udev)', { action: 'remove', iface: ev.ifname, mac: ev.mac });
    this.emit({ type: 'kernel_event', time: now(), action: 'remove', iface: ev.ifname, mac: ev.mac, result: 'queued' });
    this.schedule('drain', 'drain queue', () => this.drain());
  }

  private linkState(link: LinkLine, up: boolean): void {
    if (this.pendingKernel.has(link.index) || this.stopping) return;
    if (!isCandidate({ ifname: link.ifname }, this.cfg.filter).ok) return;
    this.pendingLinks.set(link.ifname, { up, at: Date.now() });
    clearTimeout(this.linkTimer);
    clearTimeout(this.routingTimer);
    this.linkTimer = setTimeout(() => this.schedule('links', 'link state change', () => this.links()), LINK_DEBOUNCE_MS);
  }

  /**
   * Addresses and routes can vanish with no link event (a DHCP client re-acquiring, networkd
   * restarting): a debounced reconcile from cached metadata puts back what is missing (and,
   * metadata not being re-read, deletes nothing for a present NIC). Our own changes trigger one
   * more reconcile that finds nothing to do.
   */
  private routingChanged(c: RoutingChange): void {
    if (this.stopping || !this.cfg.routing.enabled) return;
    if (c.kind === 'address' && !isCandidate({ ifname: c.ifname }, this.cfg.filter).ok) return;
    clearTimeout(this.routingTimer);
    this.routingTimer = setTimeout(() => this.schedule('routing', ROUTING_REPAIR, () => this.repairRouting()), ROUTING_DEBOUNCE_MS);
  }

  private async repairRouting(): Promise<void> {
    try {
      await this.locked(() =>
        this.withBridge(ROUTING_REPAIR, async (b) => {
          const r = await reconcile({ summary: await b.summary(), config: this.cfg, metadataComplete: false, env: { leaseGateway: (n) => dhclientLeaseGateway(n) } });
          if (r.changes.length || r.failed.length) {
            this.emit({ type: 'routing', time: now(), result: r.failed.length ? 'failed' : 'repaired', changes: r.changes.length, failed: r.failed.length });
          }
        }),
      );
    } catch (e) {
      log('warn', 'policy routing repair failed', { error: oneLine(e) });
    }
  }

  private async links(): Promise<void> {
    const changes = [...this.pendingLinks.entries()].filter(([ifname]) => Date.now() - (this.touched.get(ifname) ?? 0) > OWN_CHANGE_MS);
    this.pendingLinks.clear();
    if (!changes.length) return;
    const policy = this.cfg.events.link_down;
    const rec = (ifname: string, up: boolean, result: Extract<DaemonRecord, { type: 'link' }>['result'], reason?: string, routing_changes?: number) => {
      log(result === 'failed' ? 'warn' : 'info', `link ${up ? 'up' : 'down'}: ${result}`, { iface: ifname, policy: describePolicy(policy), reason, routing_changes });
      this.emit({ type: 'link', time: now(), iface: ifname, state: up ? 'up' : 'down', policy: describePolicy(policy), result, reason, routing_changes });
    };
    if (policy === 'ignore') {
      for (const [ifname, c] of changes) rec(ifname, c.up, 'ignored');
      return;
    }
    if (typeof policy === 'object') {
      for (const [ifname, c] of changes) {
        const r = await runPolicyCommand(policy.run, { HOTPLUG_EVENT: 'link_down', HOTPLUG_IFACE: ifname, HOTPLUG_STATE: c.up ? 'up' : 'down' });
        rec(ifname, c.up, r.ok ? 'ran' : 'failed', r.detail);
      }
      return;
    }
    try {
      await this.locked(() =>
        this.withBridge('link reconcile', async (b) => {
          if (policy === 'apply') {
            await applyNetwork(b, { refresh: false, dryRun: false });
            for (const [ifname, c] of changes) rec(ifname, c.up, 'applied');
            return;
          }
          // reconcile: cached metadata, never complete enough to delete for a present NIC.
          const summary = await b.summary();
          const r = await reconcile({ summary, config: this.cfg, metadataComplete: false, env: { leaseGateway: (n) => dhclientLeaseGateway(n) } });
          for (const [ifname, c] of changes) rec(ifname, c.up, r.failed.length ? 'failed' : 'reconciled', r.failed.length ? `${r.failed.length} routing change(s) failed` : undefined, r.changes.length);
        }),
      );
    } catch (e) {
      for (const [ifname, c] of changes) rec(ifname, c.up, 'failed', oneLine(e));
    }
  }

  // ------------------------------------------------------------------------------ metadata poller

  private armPoll(first: boolean): void {
    clearTimeout(this.pollTimer);
    if (this.stopping) return;
    const ms = pollDelay(this.cfg.daemon.poll_interval_seconds * 1000, first ? 0 : this.poll.errors);
    this.poll.nextAt = Date.now() + ms;
    this.pollTimer = setTimeout(() => this.schedule('poll', 'metadata poll', () => this.pollOnce().finally(() => this.armPoll(false))), ms);
  }

  /** One poll: re-read the network subtree, compare its fingerprint, act on a change. */
  async pollOnce(): Promise<void> {
    if (!bootFinished()) return;
    if ((await pendingCount()) > 0) {
      // Events first; the next poll compares against what they leave.
      this.schedule('drain', 'drain queue', () => this.drain());
      return;
    }
    const t0 = performance.now();
    let r: { summary: InstanceSummary; network_config: NetworkConfig };
    try {
      r = await this.withBridge('metadata poll', async (b) => {
        const net = await b.refreshNetwork(2);
        return net.supported ? net : await b.refresh({ timeout: 2, maxWait: 5 });
      });
      this.poll.errors = 0;
      this.poll.lastError = null;
    } catch (e) {
      this.poll.errors++;
      this.poll.lastError = oneLine(e);
      log('warn', 'metadata poll failed; backing off', { error: this.poll.lastError, errors: this.poll.errors });
      return;
    } finally {
      this.poll.polls++;
      this.poll.last = now();
      this.poll.lastMs = since(t0);
    }
    const fp = fingerprint(r.summary);
    if (this.baseline === undefined) {
      this.baseline = fp;
      this.summary = r.summary;
      return;
    }
    if (fp === this.baseline) return;
    const change = describeChange(this.summary, r.summary);
    this.poll.lastChange = now();
    log('info', 'metadata changed without a device event', { change, policy: describePolicy(this.cfg.events.metadata_change) });
    await this.metadataChanged(r, change, fp);
  }

  private async metadataChanged(r: { summary: InstanceSummary; network_config: NetworkConfig }, change: string, fp: string): Promise<void> {
    const t0 = performance.now();
    const policy: EventPolicy = this.cfg.events.metadata_change;
    type R = Extract<DaemonRecord, { type: 'metadata_change' }>;
    const done = (result: R['result'], extra: Partial<R> = {}) => {
      const rec: R = { type: 'metadata_change', time: now(), result, change, policy: describePolicy(policy), duration_ms: since(t0), ...extra };
      log(result === 'failed' ? 'error' : 'info', `metadata change ${result}`, { change, policy: rec.policy, duration_ms: rec.duration_ms, reason: rec.reason, routing_changes: rec.routing_changes, brought_up: rec.brought_up?.join(',') });
      this.emit(rec);
    };
    const gate = enabledGate(r.summary);
    if (!gate.open) {
      this.baseline = fp;
      this.summary = r.summary;
      return done('skipped', { reason: gate.reason });
    }
    if (policy === 'ignore') {
      this.baseline = fp;
      this.summary = r.summary;
      return done('ignored');
    }
    if (typeof policy === 'object') {
      const x = await runPolicyCommand(policy.run, { HOTPLUG_EVENT: 'metadata_change', HOTPLUG_CHANGE: change });
      if (x.ok) {
        this.baseline = fp;
        this.summary = r.summary;
      }
      return done(x.ok ? 'applied' : 'failed', { reason: x.detail });
    }
    try {
      const out = await this.locked(() =>
        this.withBridge('metadata change', async (b) => {
          // Re-read under the lock: a worker or the CLI may have changed things meanwhile.
          const net = await b.refreshNetwork(2);
          const cur = net.supported ? net : r;
          let broughtUp: string[] = [];
          if (policy === 'apply') {
            // Render everything; bring up only NICs new in metadata that are present here.
            const before = new Set(this.summary?.macs ?? []);
            const present = await presentLinks();
            const known = await loadKnown();
            const knownMacs = new Set(Object.values(known).map((k) => k.mac));
            const fresh = [...namesByMac(cur.network_config)].filter(([mac]) => !before.has(mac) && !knownMacs.has(mac) && present.has(mac));
            broughtUp = fresh.map(([, name]) => name);
            const failed = await this.pipeline.applyConfig(b, cur.network_config, true, broughtUp);
            for (const [mac, name] of fresh) {
              if (failed.includes(name)) continue;
              const dn = cur.summary.nics[mac]?.device_number;
              await rememberInterface(name, { mac, addedAt: Date.now(), deviceNumber: dn != null && Number.isSafeInteger(Number(dn)) ? Number(dn) : undefined });
            }
            if (failed.length) throw new Error(`the network activator failed to bring up ${failed.join(', ')}`);
          }
          const rt = await reconcile({ summary: cur.summary, config: this.cfg, metadataComplete: true, env: { leaseGateway: (n) => dhclientLeaseGateway(n) } });
          if (rt.failed.length) throw new Error(`policy routing: ${rt.failed.length} change(s) failed`);
          this.summary = cur.summary;
          this.baseline = fingerprint(cur.summary);
          return { broughtUp, routing: rt.changes.length };
        }),
      );
      done('applied', { brought_up: out.broughtUp, routing_changes: out.routing });
    } catch (e) {
      done('failed', { reason: oneLine(e) });
    }
  }

  // ------------------------------------------------------------------------------ socket

  private subscribe(send: (m: Reply) => void): () => void {
    this.subscribers.add(send);
    return () => this.subscribers.delete(send);
  }

  private emit(rec: DaemonRecord): void {
    this.ring.push(rec);
    if (this.ring.length > RING) this.ring.splice(0, this.ring.length - RING);
    for (const s of this.subscribers) s(rec as unknown as Reply);
  }

  private request<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => this.schedule('request', what, () => fn().then(resolve, reject), reject));
  }

  private async handle(req: Exclude<Request, { op: 'subscribe' }>): Promise<Reply> {
    switch (req.op) {
      case 'ping':
        return { pid: process.pid };
      case 'kick':
        this.stats.kicks++;
        this.schedule('drain', 'drain queue', () => this.drain());
        return { queued: await pendingCount() };
      case 'status':
        return { status: await this.status() };
      case 'refresh': {
        const r = await this.request('refresh (socket)', () =>
          this.locked(() => this.withBridge('refresh', (b) => refreshMetadata(b))),
        );
        return { result: { duration_ms: r.durationMs, macs: r.summary.macs, datasource: r.summary.datasource, instance_id: r.summary.instance_id } };
      }
      case 'apply': {
        const run = () =>
          this.withBridge('apply', async (b) => {
            const r = await applyNetwork(b, { refresh: req.refresh, dryRun: req.dryRun });
            if (!req.dryRun) await this.refreshBaseline(b).catch(() => {});
            return r;
          });
        const r = await this.request(`apply (socket${req.dryRun ? ', dry run' : ''})`, () => (req.dryRun ? run() : this.locked(run)));
        return { result: { dry_run: req.dryRun, refreshed: r.refreshed, duration_ms: r.durationMs, network_config: r.networkConfig, files: r.files, routes: r.routeLines } };
      }
    }
  }

  async status(): Promise<Record<string, unknown>> {
    const nodeRss = process.memoryUsage().rss;
    const pyRss = this.bridges.rss();
    const s = this.summary ?? this.bridges.summary;
    const sAt = this.summary ? this.summaryAt : this.bridges.summaryAt;
    return {
      running: true,
      pid: process.pid,
      state: this.state,
      current_job: this.current,
      jobs_waiting: this.jobs.length,
      started: new Date(this.startedAt).toISOString(),
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
      ready: this.readyAt !== null,
      socket: { path: this.socketPath, connections: this.server?.connections ?? 0, requests: this.server?.requests ?? 0, errors: this.server?.errors ?? 0 },
      config: {
        file: this.opts.configPath ?? paths.configFile,
        poll_interval_seconds: this.cfg.daemon.poll_interval_seconds,
        events: Object.fromEntries(Object.entries(this.cfg.events).map(([k, v]) => [k, describePolicy(v)])),
        last_reload: this.reload,
      },
      queue: { pending: await pendingCount().catch(() => null) },
      last_events: this.ring.slice(-20),
      bridge: this.bridges.health(),
      monitor: this.monitor ? { pid: this.monitor.pid ?? null, running: this.monitor.running, restarts: this.monitor.restarts, links: this.monitor.links.size, last_error: this.monitor.lastError ?? null } : null,
      poller:
        this.opts.poll === false
          ? null
          : {
              interval_seconds: this.cfg.daemon.poll_interval_seconds,
              polls: this.poll.polls,
              last_poll: this.poll.last,
              last_poll_ms: this.poll.lastMs,
              last_change: this.poll.lastChange,
              errors: this.poll.errors,
              last_error: this.poll.lastError,
              next_in_ms: this.poll.nextAt === null ? null : Math.max(0, this.poll.nextAt - Date.now()),
              fingerprint: this.baseline ?? null,
            },
      memory: { node_rss_mb: mb(nodeRss), node_heap_used_mb: mb(process.memoryUsage().heapUsed), python_rss_mb: mb(pyRss), total_rss_mb: mb(nodeRss + (pyRss ?? 0)) },
      stats: this.stats,
      summary: s ? { datasource: s.datasource, instance_id: s.instance_id, hotplug: s.hotplug, macs: s.macs, time: typeof sAt === 'number' ? new Date(sAt).toISOString() : null } : null,
    };
  }
}

/** Whether a daemon answers on its advertised socket (for the CLI). */
export function daemonAdvertised(): boolean {
  return existsSync(advertFile());
}
