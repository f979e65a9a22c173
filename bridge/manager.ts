/**
 * A warm Python bridge kept for a long-running process (the daemon): started once, instance
 * (obj.pkl) opened once, kept, and repaired when it fails.
 *
 *  - death: the Python child's exit is watched; pending calls reject with kind 'BridgeDead'
 *    (index.ts), the manager notes it (onDeath) and the next get() starts a new one.
 *  - stuck: every call has a per-call timeout (index.ts, kind 'BridgeTimeout'); withBridge()
 *    then restarts the bridge (a timed-out Python call is still running in there) and runs the
 *    work again.
 *  - summaries: the bridge it hands out remembers the last summary a reply carried (summary-memo.ts).
 *  - foreign writes: when obj.pkl changes under us (a CLI refresh, a one-shot worker), the
 *    instance is re-opened before the next use, so the daemon never stores stale metadata over it.
 *
 * pythonia keeps one global bridge per node process; restarting its Python child needs three
 * repairs (see resetPythonia): its GC timer (cleared by exit()), its 'jsi' handler (dropped by
 * com.start()), and its finalizer registry, whose late callbacks would otherwise free object ids
 * of the NEW process (ids restart at 1 in every Python process).
 */
import { readFileSync, statSync } from 'node:fs';
import { startBridge, pythoniaChild, type Bridge } from './index.js';
import { memoSummaries } from './summary-memo.js';
import { BridgeError, silentLogger, type BridgeLogger, type InstanceSummary } from './types.js';

export type BridgeFactory = () => Promise<Bridge>;
/** The Python child of a started bridge, to watch for its exit (tests inject their own). */
export interface WatchedProc {
  readonly pid?: number | undefined;
  once(event: 'exit', fn: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
}
export type ProcOf = (b: Bridge) => Promise<WatchedProc | undefined>;
/** Opens the instance on a fresh bridge (the CLI records what it read while doing so). */
export type OpenInstance = (bridge: Bridge, objPkl: string) => Promise<{ summary: InstanceSummary }>;

export interface BridgeManagerOptions {
  /** Default: the real pythonia bridge (startBridge with this manager's logger). */
  factory?: BridgeFactory;
  /** cloud-init's cached datasource, watched for foreign writes. */
  objPkl: string;
  open: OpenInstance;
  /** Default: pythonia's Python child. */
  procOf?: ProcOf;
  /** Default: silent. */
  log?: BridgeLogger;
}

export interface WithBridgeOptions {
  /** Runs of `fn` in all, restarts included (default 3). */
  attempts?: number;
  /** After each restart, before `fn` runs again. */
  onRestart?: (info: { kind: string; reason: string; attempt: number }) => void;
}

/** Failures that mean "this Python process is unusable": restart it, then retry. */
export function isBridgeFailure(e: unknown): e is BridgeError {
  return e instanceof BridgeError && (e.kind === 'BridgeDead' || e.kind === 'BridgeTimeout');
}

export interface BridgeHealth {
  pid: number | null;
  alive: boolean;
  restarts: number;
  started_at: string | null;
  last_error: string | null;
  last_restart: string | null;
  reopens: number;
}

/** Resident set size of a process in bytes, from /proc (null if gone). */
export function rssOf(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function mtimeOf(p: string): number | null {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return null;
  }
}

function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (msg.split('\n').find((l) => l.trim() !== '') ?? 'unknown error').trim();
}

/** The parts of pythonia's process-global bridge (globalThis.__pythonBridge) that resetPythonia repairs. */
interface PythoniaGlobal {
  runTasks?: () => void;
  freeable: unknown[];
  finalizer: FinalizationRegistry<unknown>;
  jsi: { m: Record<number, unknown>; onMessage: (...args: unknown[]) => unknown };
  loop: ReturnType<typeof setInterval>;
  com: { register(name: string, fn: (...args: unknown[]) => unknown): void };
}

/** Repairs pythonia's process-global bridge after its Python child was replaced (see above). */
function resetPythonia(): void {
  const pb = (globalThis as { __pythonBridge?: PythoniaGlobal }).__pythonBridge;
  if (!pb || typeof pb.runTasks !== 'function') return;
  pb.freeable = [];
  pb.finalizer = new FinalizationRegistry((ffid: unknown) => {
    pb.freeable.push(ffid);
    try {
      delete pb.jsi.m[ffid as number];
    } catch {
      /* as pythonia */
    }
  });
  clearInterval(pb.loop);
  pb.loop = setInterval(pb.runTasks, 1000);
  pb.loop.unref?.(); // the daemon stays up for its socket; this timer must not keep anyone else alive
  try {
    pb.com.register('jsi', pb.jsi.onMessage.bind(pb.jsi));
  } catch {
    /* older pythonia */
  }
}

export class BridgeManager {
  private bridge: Bridge | undefined;
  private starting: Promise<Bridge> | undefined;
  private dead = false;
  private loadedMtime: number | null = null;
  private everStarted = false;
  restarts = 0;
  reopens = 0;
  startedAt: string | null = null;
  lastError: string | null = null;
  lastRestart: string | null = null;
  /** Summary from the last open (or re-open), and when it was read (ms since the epoch). */
  summary: InstanceSummary | undefined;
  summaryAt: number | null = null;
  /** Called when the Python child dies on its own (not when we stop it). */
  onDeath: ((why: string) => void) | undefined;

  private readonly factory: BridgeFactory;
  private readonly objPkl: string;
  private readonly open: OpenInstance;
  private readonly procOf: ProcOf;
  private readonly log: BridgeLogger;
  /** The real pythonia bridge (not an injected one): its global state needs repairs on restart. */
  private readonly pythonia: boolean;

  constructor(opts: BridgeManagerOptions) {
    this.log = opts.log ?? silentLogger;
    this.pythonia = opts.factory === undefined;
    this.factory = opts.factory ?? (() => startBridge({ log: this.log }));
    this.objPkl = opts.objPkl;
    this.open = opts.open;
    this.procOf = opts.procOf ?? (() => pythoniaChild());
  }

  get pid(): number | undefined {
    return this.bridge && !this.dead ? this.bridge.pythonPid : undefined;
  }

  alive(): boolean {
    const pid = this.pid;
    if (!pid) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  health(): BridgeHealth {
    return {
      pid: this.pid ?? null,
      alive: this.alive(),
      restarts: this.restarts,
      started_at: this.startedAt,
      last_error: this.lastError,
      last_restart: this.lastRestart,
      reopens: this.reopens,
    };
  }

  rss(): number | null {
    return rssOf(this.pid);
  }

  /** The warm bridge; starts (or, after a death, restarts) it and re-opens a changed obj.pkl. */
  async get(): Promise<Bridge> {
    if (this.bridge && this.dead) await this.restart(this.lastError ?? 'python bridge process died');
    if (this.bridge) {
      await this.reopenIfChanged(this.bridge);
      return this.bridge;
    }
    this.starting ??= this.start().finally(() => (this.starting = undefined));
    return this.starting;
  }

  /**
   * `fn` with the warm bridge; our own writes noted after it succeeded. A dead or stuck bridge
   * (isBridgeFailure) is restarted and `fn` run again, up to `attempts` runs in all; any other
   * error, and the last failure, is rethrown unchanged.
   */
  async withBridge<T>(what: string, fn: (b: Bridge) => Promise<T>, opts: WithBridgeOptions = {}): Promise<T> {
    const attempts = opts.attempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      try {
        const b = await this.get();
        const r = await fn(b);
        this.noteOwnWrites();
        return r;
      } catch (e) {
        if (!isBridgeFailure(e) || attempt >= attempts) throw e;
        const reason = oneLine(e);
        this.log('error', `python bridge failed during ${what}; restarting it and running it again`, { kind: e.kind, error: reason, attempt });
        await this.restart(reason);
        opts.onRestart?.({ kind: e.kind, reason, attempt });
      }
    }
  }

  /** After our own writes (store): remember obj.pkl's mtime so they do not look foreign. */
  noteOwnWrites(): void {
    this.loadedMtime = mtimeOf(this.objPkl);
  }

  async restart(reason: string): Promise<void> {
    this.restarts++;
    this.lastRestart = new Date().toISOString();
    this.lastError = reason;
    this.log('warn', 'restarting the python bridge', { reason, restarts: this.restarts });
    await this.stop();
  }

  async stop(): Promise<void> {
    const b = this.bridge;
    this.bridge = undefined;
    this.dead = false;
    if (b) await b.close().catch(() => {});
  }

  private async start(): Promise<Bridge> {
    if (this.everStarted && this.pythonia) resetPythonia();
    // Every reply's summary remembered (summary-memo.ts): a batch asks for none it already has.
    const b = memoSummaries(await this.factory());
    this.everStarted = true;
    let opened: { summary: InstanceSummary };
    try {
      opened = await this.open(b, this.objPkl);
    } catch (e) {
      await b.close().catch(() => {});
      this.lastError = oneLine(e);
      throw e;
    }
    this.summary = opened.summary;
    this.summaryAt = Date.now();
    this.loadedMtime = mtimeOf(this.objPkl);
    this.dead = false;
    this.bridge = b;
    this.startedAt = new Date().toISOString();
    const proc = await this.procOf(b);
    if (proc && proc.pid === b.pythonPid) {
      proc.once('exit', (code, signal) => {
        if (this.bridge !== b) return; // we stopped it
        this.dead = true;
        const why = `python bridge process ${proc.pid} exited (${signal ?? `code ${code}`})`;
        this.lastError = why;
        this.onDeath?.(why);
      });
    }
    this.log('info', 'python bridge ready', { pid: b.pythonPid, restarts: this.restarts });
    return b;
  }

  private async reopenIfChanged(b: Bridge): Promise<void> {
    const m = mtimeOf(this.objPkl);
    if (m === null || m === this.loadedMtime) return;
    const r = await this.open(b, this.objPkl);
    this.summary = r.summary;
    this.summaryAt = Date.now();
    this.loadedMtime = m;
    this.reopens++;
    this.log('info', 'obj.pkl changed by another process; instance re-opened', { reopens: this.reopens });
  }
}
