/**
 * `hotplug daemon`: event sources and a job queue around the same Pipeline the one-shot worker
 * runs, with a warm bridge.
 *
 *   queue watch (inotify) · socket kick ─► drain ──┐
 *   ip monitor: new/deleted link (kernel-events) ──┤
 *               link down/up ─────────► links ─────┼─► jobs, one at a time ─► pipeline
 *               addresses, our rules ─► routing ───┤     (drainOnce · linksChanged ·
 *   metadata poller (poller.ts) ─────► poll ───────┤      repairRouting · metadataChanged ·
 *   url sources (url-source.ts) ─────► url ────────┤      applyAll · jobs), warm bridge
 *   listeners (unix socket, FIFO, TCP: listeners/)  │
 *     submit apply / refresh ─► job (job-store.ts) ┘   status, jobs, wait: from memory
 *
 * Invariants:
 *  - One apply at a time across daemon, workers and the CLI: every job that changes the system
 *    takes the flock apply lock (src/lock.ts) for its duration only, and releases it with
 *    releaseThenRecheck (a worker that found the lock held left its events to us).
 *  - The queue on disk is the source of truth: events are acked by the pipeline only after handling,
 *    so kill -9 of the daemon loses nothing; the next daemon (or worker) handles them.
 *  - The udev program (bin/hotplug-udev-hook) starts no worker while /run/cloud-hotplug/daemon.lock
 *    is held: the daemon holds it (flock, released by the kernel if it dies) for its whole life and
 *    watches the queue directory (inotify), having started the watch BEFORE taking the lock. On
 *    shutdown it releases the lock BEFORE its last look at the queue and leaves anything found
 *    there to a one-shot worker. A kick on the socket (`hotplug handle`) is the same, faster.
 *  - The Python bridge stays warm; its death or a stuck call restarts it and the job is re-run.
 *  - A submitted job is persisted `running` before its work starts; a daemon killed mid-job leaves
 *    it so, and the next daemon marks it failed and runs it again whole (job-store.ts).
 */
import { mkdir, unlink } from 'node:fs/promises';
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Bridge } from '../../bridge/index.js';
import { currentSummary } from '../../bridge/summary-memo.js';
import type { Config } from '../config.js';
import type { CloudPart, Effective } from '../config-cloud.js';
import { reloadConfig } from './reload.js';
import { paths } from '../paths.js';
import { acquireLock, releaseThenRecheck, tryLock, type Lock } from '../lock.js';
import { list, pendingCount } from '../events/queue.js';
import type { HotplugEvent } from '../events/event.js';
import type { EventRecord } from '../record/index.js';
import { Pipeline } from '../pipeline/pipeline.js';
import { defaultDeps, withBridge, type PipelineDeps } from '../pipeline/deps.js';
import { linksChanged, repairRouting, type LinkResult } from '../pipeline/changes.js';
import type { JobKind as ClientJobKind } from './protocol.js';
import { describePolicy } from '../pipeline/policies.js';
import { Bridges } from '../core/bridges.js';
import { ROUTING_PROTO } from '../routing/state.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { sweepStaleTemps } from '../util/sweep.js';
import { Backoff } from '../util/backoff.js';
import { gcAfterWork } from '../util/idle-gc.js';
import { log, since } from '../util/log.js';
import { oneLine, UserError } from '../util/errors.js';
import type { Handlers, Reply } from './listeners/session.js';
import { ListenerSet } from './listeners/index.js';
import { handleRequest, startWorker } from './requests.js';
import { JobStore, type JobRecord } from './job-store.js';
import { resumeInterrupted, submitJob, urlSourcesOf } from './daemon-jobs.js';
import type { UrlSource, UrlChangeRecord } from './url-source.js';
import { advertFile, readAdvert } from './kick.js';
import { LinkMonitor } from './monitor.js';
import { JobQueue } from './jobs.js';
import { KernelEvents, type KernelEventRecord } from './kernel-events.js';
import { MetadataPoller, type MetadataChangeRecord } from './poller.js';
import { daemonStatus } from './status.js';

const LOCK_WAIT_MS = 10 * 60_000;
const RING = 50;
/** Safety net behind the queue watch: look at the queue this often anyway. */
const SWEEP_MS = 15_000;
/** The longest a batch waits for the udev events of links the kernel just reported (gather()). */
const GATHER_MAX_MS = 200;
const GATHER_POLL_MS = 10;

/** Held by the running daemon; the udev program starts no worker while it is held. */
export const daemonLockFile = (): string => join(paths.runDir, 'daemon.lock');

export interface DaemonOptions {
  configPath?: string;
  /** Socket path instead of config daemon.socket (tests). */
  socket?: string;
  /** Do not start `ip monitor` (tests). */
  monitor?: boolean;
  /** Do not poll metadata (tests). */
  poll?: boolean;
  bridges?: Bridges;
  /** Where the config came from (runDaemon); absent: the file alone. */
  effective?: Effective;
}

/** Everything the daemon reports (subscribers and status last_events). */
export type DaemonRecord =
  | ({ type: 'event' } & EventRecord)
  | MetadataChangeRecord
  | { type: 'link'; time: string; iface: string; state: 'up' | 'down'; policy: string; result: LinkResult; reason?: string; routing_changes?: number }
  | KernelEventRecord
  | { type: 'bridge'; time: string; what: 'died' | 'restarted' | 'timeout'; reason: string; restarts: number }
  | { type: 'config'; time: string; result: 'reloaded' | 'rejected'; reason?: string }
  | UrlChangeRecord
  | { type: 'job'; time: string; id: string; kind: string; state: string; duration_ms: number | null; error?: string }
  | { type: 'routing'; time: string; result: 'repaired' | 'failed'; changes: number; failed: number };

const now = () => new Date().toISOString();

export class Daemon {
  cfg: Config;
  readonly bridges: Bridges;
  readonly deps: PipelineDeps;
  readonly pipeline: Pipeline;
  readonly jobs = new JobQueue();
  readonly kernel: KernelEvents;
  readonly poller: MetadataPoller;
  readonly listeners: ListenerSet;
  readonly jobStore = new JobStore();
  urlSources: UrlSource[] = [];
  effective: Effective | null;
  monitor: LinkMonitor | undefined;
  readonly opts: DaemonOptions;
  state: 'starting' | 'idle' | 'busy' | 'stopping' = 'starting';
  readonly startedAt = Date.now();
  readyAt: number | null = null;
  private stopping = false;
  readonly ring: DaemonRecord[] = [];
  private readonly subscribers = new Set<(m: Reply) => void>();
  private readonly claimed: HotplugEvent[] = [];
  private readonly touched = new Map<string, number>();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly retry = new Backoff({ initialMs: 2000, maxMs: 300_000 });
  private bootWait = false;
  /** The batch's heap given back once the queue is drained and nothing else runs (util/idle-gc.ts). */
  private readonly afterWork = gcAfterWork(() => !this.jobs.busy);
  private sweepTimer: NodeJS.Timeout | undefined;
  private queueWatch: FSWatcher | undefined;
  get queueWatching(): boolean {
    return this.queueWatch !== undefined && !this.stopping;
  }
  private daemonLock: Lock | null = null;
  readonly stats = { kicks: 0, batches: 0, bridgeFailures: 0 };
  reload: { time: string; ok: boolean; error?: string } | null = null;
  socketPath: string;

  constructor(cfg: Config, opts: DaemonOptions = {}) {
    this.cfg = cfg;
    this.opts = opts;
    this.effective = opts.effective ?? null;
    this.listeners = new ListenerSet((via) => this.handlersFor(via));
    this.socketPath = opts.socket ?? cfg.daemon.socket;
    this.bridges = opts.bridges ?? new Bridges();
    this.deps = defaultDeps(() => this.cfg, this.bridges, {
      onRecord: (rec) => this.emit({ type: 'event', ...rec }),
      onBridgeRestart: (i) => this.bridgeRestarted(i.kind, i.reason),
    });
    this.pipeline = new Pipeline(this.deps);
    this.jobs.onState = (busy) => {
      if (this.state !== 'starting' && !this.stopping) this.state = busy ? 'busy' : 'idle';
    };
    this.bridges.onDeath = (why) => {
      log('error', 'python bridge died; restarting it', { reason: why });
      this.emit({ type: 'bridge', time: now(), what: 'died', reason: why, restarts: this.bridges.restarts });
      // Warm again before the next event needs it (a job in flight restarts it itself).
      this.jobs.schedule('bridge', 'restart python bridge', async () => {
        await this.bridges.get();
      });
    };
    this.kernel = new KernelEvents({
      config: () => this.cfg,
      stopping: () => this.stopping,
      claimed: () => this.claimed,
      touchedAt: (ifname) => this.touched.get(ifname) ?? 0,
      emit: (rec) => this.emit(rec),
      drain: () => this.scheduleDrain(),
      links: () => this.jobs.schedule('links', 'link state change', () => this.links()),
      repairRouting: () => this.jobs.schedule('routing', 'policy routing repair', () => this.repairRouting()),
    });
    this.poller = new MetadataPoller({
      deps: this.deps,
      exclusive: (fn) => this.locked(fn),
      stopping: () => this.stopping,
      schedule: (run) => this.jobs.schedule('poll', 'metadata poll', run),
      queued: async () => (await pendingCount()) > 0,
      drain: () => this.scheduleDrain(),
      emit: (rec) => this.emit(rec),
    });
  }

  // ------------------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    // Watch first, lock second: an event queued after the lock is taken is seen by the watch; one
    // queued before found the lock free and its hook started a worker.
    await mkdir(paths.queueDir, { recursive: true, mode: 0o700 });
    this.queueWatch = watch(paths.queueDir, (_type, file) => {
      if (file && !String(file).startsWith('.') && String(file).endsWith('.json') && existsSync(join(paths.queueDir, String(file)))) this.scheduleDrain();
    });
    this.queueWatch.on('error', (e) => log('warn', 'queue watch failed; relying on the periodic sweep', { error: oneLine(e) }));
    this.daemonLock = await tryLock(daemonLockFile());
    if (!this.daemonLock) throw new UserError(`another daemon already runs (it holds ${daemonLockFile()})`);
    // Temp files of writers killed mid-write (before this start, or by the daemon it replaces).
    await sweepStaleTemps();
    this.sweepTimer = setInterval(() => {
      void pendingCount()
        .then((n) => n > 0 && !this.jobs.busy && this.jobs.schedule('drain', 'drain queue (sweep)', () => this.drain()))
        .catch(() => {});
    }, SWEEP_MS);
    await resumeInterrupted(this);
    await this.listeners.listenUnix(this.socketPath);
    await this.listeners.configure(this.cfg.daemon.listeners);
    await this.advertise();
    try {
      await this.bridges.withBridge('start', (b) => this.acceptSummary(b), { attempts: 1 });
    } catch (e) {
      // No cache yet (early boot) or a broken one: events stay queued; retried when needed.
      log('warn', 'python bridge not ready yet; will retry when needed', { error: oneLine(e) });
    }
    if (this.opts.monitor !== false) {
      this.monitor = new LinkMonitor(this.kernel, { routingProto: ROUTING_PROTO });
      await this.monitor.start().catch((e) => log('warn', 'ip monitor did not start cleanly; kernel link events may be missed until it restarts', { error: oneLine(e) }));
    }
    this.scheduleDrain();
    if (this.opts.poll !== false) this.poller.arm(true);
    this.startUrlSources();
    this.state = this.jobs.busy ? 'busy' : 'idle';
    this.readyAt = Date.now();
  }

  /** SIGTERM: finish the current job, then leave (the queue stays on disk). */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.state = 'stopping';
    log('info', 'daemon stopping: finishing the current job', { current: this.jobs.current ?? 'none' });
    this.poller.stop();
    for (const u of this.urlSources) u.stop();
    clearTimeout(this.retryTimer);
    clearInterval(this.sweepTimer);
    this.kernel.stop();
    this.queueWatch?.close();
    this.monitor?.stop();
    await this.jobs.close();
    await this.listeners.close();
    if (readAdvert()?.pid === process.pid) await unlink(advertFile()).catch(() => {});
    await this.bridges.stop();
    // Release, then look (see the invariants): events queued from now on start their own worker.
    if (this.daemonLock) {
      const lock = this.daemonLock;
      this.daemonLock = null;
      await releaseThenRecheck(lock, (left) => startWorker(left));
    }
    log('info', 'daemon stopped');
  }

  private handlersFor(via: string): Handlers {
    return { handle: (r, send) => handleRequest(this, r, send, via), subscribe: (send) => this.subscribe(send) };
  }

  startUrlSources(): void {
    for (const u of this.urlSources) u.stop();
    this.urlSources = urlSourcesOf(this);
    for (const u of this.urlSources) u.start();
  }

  /** A job for the queue (apply / refresh-metadata through the daemon); returns its record at once. */
  submit(kind: ClientJobKind, params: JobRecord['params'], via: string, rerunOf?: string): JobRecord {
    return submitJob(this, kind, params, via, rerunOf);
  }

  /** cloud-config's cloud_hotplug key, read now through the warm bridge (as a job: one call at a time). */
  readCloudPart(): Promise<CloudPart> {
    return this.jobs
      .request('read cloud-config', () => this.withBridge('cloud-config', (b) => b.cloudConfig()))
      .catch((e) => ({ error: oneLine(e) }));
  }

  advertise(): Promise<void> {
    return writeJsonAtomic(advertFile(), { pid: process.pid, socket: this.socketPath, started: new Date(this.startedAt).toISOString() }, 0o644);
  }

  /** SIGHUP: re-read the config; an invalid one is logged and the old one kept (reload.ts). */
  reloadConfig(): Promise<boolean> {
    return reloadConfig(this);
  }

  // ------------------------------------------------------------------------------ jobs

  scheduleDrain(what = 'drain queue'): void {
    this.jobs.schedule('drain', what, () => this.drain().finally(this.afterWork));
  }

  /** Run `fn` under the apply lock, then release and look at the queue (see the invariants above). */
  async locked<T>(fn: () => Promise<T>): Promise<T> {
    const lock = await acquireLock({ timeoutMs: LOCK_WAIT_MS });
    try {
      return await fn();
    } finally {
      await releaseThenRecheck(lock, () => this.scheduleDrain());
    }
  }

  private bridgeRestarted(kind: string, reason: string): void {
    // The manager logged it; count it and tell subscribers.
    this.stats.bridgeFailures++;
    this.emit({ type: 'bridge', time: now(), what: kind === 'BridgeTimeout' ? 'timeout' : 'restarted', reason, restarts: this.bridges.restarts });
  }

  /** `fn` with the warm bridge; a dead or stuck bridge is restarted and `fn` run once more. */
  withBridge<T>(what: string, fn: (b: Bridge) => Promise<T>): Promise<T> {
    return withBridge(this.deps, what, fn);
  }

  async acceptSummary(b: Bridge): Promise<void> {
    // The summary the batch's last crawl, rederive or store replied with: no round trip (summary-memo.ts).
    this.poller.accept(await currentSummary(b));
  }

  // ------------------------------------------------------------------------------ the queue

  /**
   * A storm's NICs appear in the kernel at once, but their udev programs queue them over ~100 ms
   * on a busy machine: wait (at most GATHER_MAX_MS) while links the kernel just reported are not
   * queued yet, so the storm is one batch (one crawl, one apply, one bring-up) instead of two.
   */
  private async gather(): Promise<void> {
    const end = Date.now() + GATHER_MAX_MS;
    const seen = new Map<string, HotplugEvent>(); // each queue file read once, not every 10 ms
    while (!this.stopping && Date.now() < end && this.kernel.awaitingUdev(await list(undefined, seen)).length) await new Promise((r) => setTimeout(r, GATHER_POLL_MS));
  }

  private async drain(): Promise<void> {
    while (!this.stopping && (await pendingCount()) > 0) {
      if (!this.deps.bootFinished()) {
        // Not blocking the job loop: status, requests and polls go on; look again shortly.
        if (!this.bootWait) log('info', 'waiting for cloud-init to finish booting; events stay queued');
        this.bootWait = true;
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.scheduleDrain(), 250);
        return;
      }
      this.bootWait = false;
      await this.gather();
      const t0 = performance.now();
      let batch: HotplugEvent[] = [];
      const lock = await acquireLock({ timeoutMs: LOCK_WAIT_MS });
      try {
        this.stats.batches++;
        const outcome = await this.pipeline.drainOnce((events) => {
          batch = events;
          this.claimed.push(...events);
          if (this.claimed.length > 200) this.claimed.splice(0, this.claimed.length - 200);
        });
        if (outcome === 'empty') return;
        for (const ev of batch) this.touched.set(ev.ifname, Date.now());
        await this.withBridge('baseline', (b) => this.acceptSummary(b)).catch(() => {});
        log('debug', 'batch done', { events: batch.length, duration_ms: since(t0) });
      } catch (e) {
        log('error', 'batch failed; events stay queued', { error: oneLine(e), queued: batch.length });
        const ms = this.retry.next();
        log('warn', 'events stay queued; retrying', { in_ms: Math.round(ms) });
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.scheduleDrain('drain queue (retry)'), ms);
        return;
      } finally {
        await lock.release();
      }
      this.retry.reset();
      // Loop: events queued while we held the lock are handled now (released first, then looked).
    }
  }

  // ------------------------------------------------------------------------------ link and routing changes

  private async links(): Promise<void> {
    const changes = this.kernel.takeLinkChanges();
    if (!changes.length) return;
    const policy = describePolicy(this.cfg.events.link_down);
    await linksChanged(this.deps, (fn) => this.locked(fn), changes, (ifname, up, result, reason, routing_changes) => {
      log(result === 'failed' ? 'warn' : 'info', `link ${up ? 'up' : 'down'}: ${result}`, { iface: ifname, policy, reason, routing_changes });
      this.emit({ type: 'link', time: now(), iface: ifname, state: up ? 'up' : 'down', policy, result, reason, routing_changes });
    });
  }

  async repairRouting(): Promise<void> {
    try {
      const r = await repairRouting(this.deps, (fn) => this.locked(fn));
      if (r.changes || r.failed) this.emit({ type: 'routing', time: now(), result: r.failed ? 'failed' : 'repaired', changes: r.changes, failed: r.failed });
    } catch (e) {
      log('warn', 'policy routing repair failed', { error: oneLine(e) });
    }
  }

  // ------------------------------------------------------------------------------ socket

  private subscribe(send: (m: Reply) => void): () => void {
    this.subscribers.add(send);
    return () => this.subscribers.delete(send);
  }

  emit(rec: DaemonRecord): void {
    this.ring.push(rec);
    if (this.ring.length > RING) this.ring.splice(0, this.ring.length - RING);
    for (const s of this.subscribers) s(rec as unknown as Reply);
  }

  status(): Promise<Record<string, unknown>> {
    return daemonStatus(this);
  }
}
