/**
 * Typed TS API over the Python bridge (pythonia → bridge/python/hotplug_bridge.py): the only code
 * that starts Python and calls cloud-init. It depends on nothing of the CLI (src/): the interpreter
 * and the logger are options.
 *
 * Each method is one round trip to a coarse Python function that returns plain
 * JSON ({ok: true, …} or {ok: false, kind, error}), checked field by field (schema.ts); no
 * Python proxy escapes pythonHost(). pythonia quirks handled here: the interpreter comes from
 * PYTHON_BIN, read when pythonia is first imported (so it is imported dynamically after we set
 * it); a dead Python child only fails pending calls at their timeout (we watch its exit); node
 * does not exit until python.exit() (close()).
 */
import { accessSync, constants } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BridgeError, silentLogger, type BridgeLogger, type HotplugState, type InstanceSummary, type NetInterface, type NetworkConfig, type NetworkStackInfo, type PreviewFile } from './types.js';
import { envelope, replies, ReplyMismatch, type CallName, type Reply } from './schema.js';

export * from './types.js';
export type { CallName, Reply } from './schema.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Works from bridge/ (ts-node style) and from dist/bridge/ (tsc output). */
export const BRIDGE_PY = [resolve(here, 'python/hotplug_bridge.py'), resolve(here, '../../bridge/python/hotplug_bridge.py')].find(
  (p) => {
    try {
      accessSync(p, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  },
) ?? resolve(here, '../../bridge/python/hotplug_bridge.py');

/** The interpreter that has cloud-init: PYTHON_BIN, else Debian's python3 (not the first on PATH). */
export const DEFAULT_PYTHON_BIN = process.env.PYTHON_BIN ?? '/usr/bin/python3';

export interface RefreshOptions {
  /** Seconds per metadata request. */
  timeout?: number;
  /** Seconds to wait for the metadata service to answer at all. */
  maxWait?: number;
}

export interface Bridge {
  readonly pythonPid: number | undefined;
  open(objPkl?: string): Promise<{ obj_pkl: string; summary: InstanceSummary; stack: NetworkStackInfo }>;
  summary(): Promise<InstanceSummary>;
  hotplugState(): Promise<HotplugState>;
  /** The cached datasource's network config and its physical interfaces; null when it has none. */
  networkConfig(): Promise<{ network_config: NetworkConfig; interfaces: NetInterface[] } | null>;
  refresh(opts?: RefreshOptions): Promise<{ duration_ms: number; summary: InstanceSummary; network_config: NetworkConfig; interfaces: NetInterface[] }>;
  /** Persist the datasource; returns the summary of what was stored. */
  store(networkConfigJson?: string): Promise<{ summary: InstanceSummary }>;
  preview(netcfg?: NetworkConfig): Promise<{ renderer: string; network_config: NetworkConfig; files: PreviewFile[]; interfaces: NetInterface[] }>;
  applyNetwork(netcfg?: NetworkConfig, bringUp?: boolean): Promise<{ failed: boolean; duration_ms: number; interfaces: NetInterface[] }>;
  bringDown(ifname: string): Promise<{ done: boolean; activator: string }>;
  /** Activator bring-up of each interface; every one is tried. */
  bringUp(ifnames: string[]): Promise<Record<string, boolean>>;
  /** Re-crawl only the network subtree (Ec2 family); supported=false elsewhere (use refresh()). */
  refreshNetwork(
    timeoutS?: number,
  ): Promise<{ supported: false } | { supported: true; duration_ms: number; summary: InstanceSummary; network_config: NetworkConfig; interfaces: NetInterface[] }>;
  /** Network config recomputed from cached metadata (no crawl); drops NICs no longer present. */
  rederive(): Promise<{ network_config: NetworkConfig | null; summary: InstanceSummary; interfaces: NetInterface[] }>;
  /** MACs the metadata service lists now (one cheap request); supported=false outside Ec2.
   * `others`: entries of the listing that are not MACs (no device can ever match them). */
  probeMacs(timeoutS?: number): Promise<{ supported: boolean; macs: string[]; others: string[]; static?: boolean }>;
  /** One small metadata read (the poller's probe): may the network metadata have changed versus the
   * opened datasource? supported=false where there is nothing cheap to read (use refreshNetwork). */
  probeNetwork(timeoutS?: number): Promise<Reply<'probe_network'>>;
  /** The `cloud_hotplug:` key of cloud-init's merged config (user-data, vendor-data), read now.
   * present=false: no such key; config=null with present: the key is not a mapping (`type` says what). */
  cloudConfig(): Promise<{ present: boolean; config: Record<string, unknown> | null; type: string }>;
  /** Where metadata may come from besides the datasource's own source: an OpenStack metadata
   * service base URL a config drive falls back to (null: none, the default). */
  setSources(mdFallback: string | null): Promise<{ md_fallback: string | null }>;
  close(): Promise<void>;
}

/** The last line of a Python traceback in pythonia's stack ("ValueError: …"). */
export function pythonErrorLine(stack: string | undefined): string | undefined {
  if (!stack) return undefined;
  const lines = stack.split('\n').map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.startsWith('at ')) continue;
    // pythonia ends its stack with e.g. "*** JS *** json.decoder.JSONDecodeError: Expecting …"
    const m = /(?:^|\s)([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.*)$/.exec(lines[i]!);
    if (m) return `${m[1]}: ${m[2]}`;
  }
  return undefined;
}

/** What the bridge needs of pythonia, typed: the rest of this file never sees a proxy. */
interface PythonHost {
  /** The Python child (pythonia keeps one per node process). */
  readonly proc: ChildProcess;
  /** Import the bridge module from its file. */
  load(path: string): Promise<void>;
  /** Call one of its functions; its (JSON) result, unchecked. */
  invoke(name: string, args: unknown[], timeoutMs: number): Promise<unknown>;
  exit(): void;
}

/**
 * pythonia's module object and its proxies, in the one place that touches them (they are
 * `any`: pythonia's proxies are dynamic). `name$` is pythonia's call with keyword options.
 */
async function pythonHost(pythonBin: string): Promise<PythonHost> {
  try {
    accessSync(pythonBin, constants.X_OK);
  } catch {
    // pythonia would crash node with an unhandled spawn 'error' event instead.
    throw new BridgeError(`python interpreter ${pythonBin} not found or not executable (set PYTHON_BIN)`, 'NoPython');
  }
  process.env.PYTHON_BIN = pythonBin;
  // require, not import(): pythonia is CommonJS, and the ESM wrapper (its exports parsed from the
  // source) costs ~6 ms more before Python is spawned, on every one-shot worker's critical path.
  const m: any = createRequire(import.meta.url)('pythonia');
  const py: any = m.default ?? m;
  if (!py.com.proc) py.com.start();
  pythoniaCom = py.com;
  let mod: any;
  return {
    proc: py.com.proc,
    async load(path) {
      mod = await py.python(path);
    },
    async invoke(name, args, timeoutMs) {
      const r: any = await mod[`${name}$`](...args, { $timeout: timeoutMs });
      return typeof r?.valueOf === 'function' ? await r.valueOf() : r;
    },
    exit() {
      py.python.exit();
    },
  };
}

/** pythonia's channel to its Python child (it replaces `proc` when a child is started again). */
let pythoniaCom: { proc?: ChildProcess } | undefined;

/** pythonia's current Python child, if a bridge was started (the manager watches it for exits). */
export async function pythoniaChild(): Promise<ChildProcess | undefined> {
  return pythoniaCom?.proc;
}

/** replies (schema.ts) seen per call name, so that a call's checker returns that call's Reply. */
const checkers: { [N in CallName]: (r: Record<string, unknown>) => Reply<N> } = replies;

/**
 * A call's raw reply as the API returns it: {ok: false} becomes the BridgeError Python named,
 * a reply that does not match the call's schema a BridgeError of kind 'BridgeProtocol'.
 */
export function checkReply<N extends CallName>(name: N, raw: unknown): Reply<N> {
  if (raw === null || raw === undefined) throw new BridgeError(`${name}: bridge returned no result`, 'BridgeProtocol');
  try {
    const env = envelope(raw);
    if (!env.ok) throw new BridgeError(env.error ?? `${name} failed`, env.kind ?? 'BridgeError');
    return checkers[name](env.fields);
  } catch (e) {
    if (e instanceof ReplyMismatch) throw new BridgeError(`${name}: malformed reply: ${e.message}`, 'BridgeProtocol');
    throw e;
  }
}

export interface StartOptions {
  /** Default: PYTHON_BIN, else /usr/bin/python3. */
  pythonBin?: string;
  /** Default per-call timeout (ms). */
  timeoutMs?: number;
  /** Default: silent. */
  log?: BridgeLogger;
}

/** A Python child started ahead of startBridge (prestartBridge), with what happened to it meanwhile. */
interface Prestarted {
  pythonBin: string;
  host: Promise<PythonHost>;
  loaded: Promise<void>;
  exited?: string;
}
let prestarted: Prestarted | undefined;

/**
 * Start Python and the import of the bridge module (cloud-init's imports) now, for the next
 * startBridge() with the same interpreter to take over: a one-shot process calls this before node
 * loads the rest of its modules, so both start-ups overlap. Never throws; a failure shows when
 * startBridge takes it over.
 */
export function prestartBridge(pythonBin: string = DEFAULT_PYTHON_BIN): void {
  if (prestarted) return;
  const host = pythonHost(pythonBin);
  const p: Prestarted = { pythonBin, host, loaded: host.then((h) => h.load(BRIDGE_PY)) };
  // Listeners at once: an 'error' event without one would crash node; an exit must not go unseen.
  void host.then(
    (h) => {
      h.proc.once('error', (e: Error) => (p.exited ??= `python failed to start: ${e.message}`));
      h.proc.once('exit', (code, signal) => (p.exited ??= `python bridge process exited (${signal ?? `code ${code}`})`));
    },
    () => {},
  );
  p.loaded.catch(() => {});
  prestarted = p;
}

/** Stops a prestarted Python child that no startBridge() took over (no-op otherwise). */
export function stopPrestarted(): void {
  const p = prestarted;
  prestarted = undefined;
  void p?.host.then(
    (h) => {
      try {
        h.exit();
      } catch {
        /* already gone */
      }
    },
    () => {},
  );
}

export async function startBridge(opts: StartOptions = {}): Promise<Bridge> {
  const pythonBin = opts.pythonBin ?? DEFAULT_PYTHON_BIN;
  const defaultTimeout = opts.timeoutMs ?? 120_000;
  const log = opts.log ?? silentLogger;
  const pre = prestarted?.pythonBin === pythonBin ? prestarted : undefined;
  prestarted = undefined;
  const host = await (pre?.host ?? pythonHost(pythonBin));
  const proc = host.proc;
  let exited: string | undefined = pre?.exited;
  let onExit: ((why: string) => void)[] = [];
  proc.on('error', (e: Error) => {
    exited = `python failed to start: ${e.message}`;
    onExit.forEach((f) => f(exited!));
  });
  proc.on('exit', (code, signal) => {
    exited = `python bridge process exited (${signal ?? `code ${code}`})`;
    onExit.forEach((f) => f(exited!));
  });
  // A Python child that dies while importing the module would leave this await hanging until
  // pythonia's 100 s request timeout: race it against the child's exit.
  let onLoadDeath!: (why: string) => void;
  const loadDeath = new Promise<never>((_, reject) => {
    onLoadDeath = (why) => reject(new BridgeError(`loading the bridge module: ${why}`, 'BridgeDead'));
  });
  loadDeath.catch(() => {});
  if (exited) onLoadDeath(exited);
  else onExit.push(onLoadDeath);
  try {
    await Promise.race([pre?.loaded ?? host.load(BRIDGE_PY), loadDeath]);
  } catch (e) {
    if (e instanceof BridgeError) throw e;
    throw new BridgeError(
      `cannot load bridge module with ${pythonBin}: ${pythonErrorLine((e as Error).stack) ?? (e as Error).message}`,
      'BridgeLoad',
    );
  } finally {
    onExit = onExit.filter((f) => f !== onLoadDeath);
  }

  /** One round trip: the reply's envelope and its fields checked against the call's schema. */
  async function call<N extends CallName>(name: N, args: unknown[], timeoutMs = defaultTimeout): Promise<Reply<N>> {
    if (exited) throw new BridgeError(exited, 'BridgeDead');
    let died!: (why: string) => void;
    const death = new Promise<never>((_, reject) => {
      died = (why) => reject(new BridgeError(`${name}: ${why}`, 'BridgeDead'));
      onExit.push(died);
    });
    let raw: unknown;
    try {
      raw = await Promise.race([host.invoke(name, args, timeoutMs), death]);
    } catch (e) {
      if (e instanceof BridgeError) throw e;
      const err = e as Error;
      const line = pythonErrorLine(err.stack) ?? (err.message || String(e));
      if (/didn't respond in time/.test(err.message ?? '')) throw new BridgeError(`${name}: python bridge timed out after ${timeoutMs} ms`, 'BridgeTimeout');
      throw new BridgeError(`${name}: ${line}`, 'BridgeInternal');
    } finally {
      onExit = onExit.filter((f) => f !== died);
      death.catch(() => {});
    }
    return checkReply(name, raw);
  }

  return {
    get pythonPid() {
      return proc.pid;
    },
    async open(objPkl) {
      return call('open_instance', [objPkl ?? null]);
    },
    async summary() {
      return call('summary', []);
    },
    async hotplugState() {
      return call('hotplug_state', []);
    },
    async networkConfig() {
      return call('network_config', []);
    },
    async refresh(o = {}) {
      const timeout = o.timeout ?? 2;
      const maxWait = o.maxWait ?? 10;
      return call('refresh', [timeout, maxWait, 0], (maxWait + timeout * 80 + 30) * 1000);
    },
    async store(networkConfigJson) {
      return call('store', [networkConfigJson ?? null]);
    },
    async preview(netcfg) {
      return call('preview', [netcfg ? JSON.stringify(netcfg) : null]);
    },
    async applyNetwork(netcfg, bringUp = true) {
      return call('apply_network', [netcfg ? JSON.stringify(netcfg) : null, bringUp], 300_000);
    },
    async bringDown(ifname) {
      return call('bring_down', [ifname], 120_000);
    },
    async bringUp(ifnames) {
      const r = await call('bring_up', [ifnames], 120_000 + ifnames.length * 60_000);
      // Per interface, as 'brought down' in the worker (the bridge runs them concurrently).
      for (const [iface, ok] of Object.entries(r.results)) log('debug', 'brought up', { iface, ok, duration_ms: r.durations_ms[iface], activator: r.activator });
      return r.results;
    },
    async refreshNetwork(timeoutS = 2) {
      return call('refresh_network', [timeoutS], 120_000);
    },
    async rederive() {
      return call('rederive', []);
    },
    async cloudConfig() {
      return call('cloud_config', []);
    },
    async probeMacs(timeoutS = 1) {
      return call('probe_macs', [timeoutS], (timeoutS * 3 + 10) * 1000);
    },
    async probeNetwork(timeoutS = 1) {
      // Two tries (a stale token's 401), a token PUT, an ephemeral DHCP on OpenStack at worst.
      return call('probe_network', [timeoutS], (timeoutS * 4 + 15) * 1000);
    },
    async setSources(mdFallback) {
      return call('set_sources', [mdFallback]);
    },
    async close() {
      try {
        host.exit();
      } catch {
        /* already gone */
      }
    },
  };
}
