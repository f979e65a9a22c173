/**
 * Typed TS API over the Python bridge (pythonia → bridge/python/hotplug_bridge.py).
 *
 * Each method is one round trip to a coarse Python function that returns plain
 * JSON ({ok: true, …} or {ok: false, kind, error}); no Python proxy escapes this file.
 * pythonia quirks handled here: the interpreter comes from PYTHON_BIN, read when
 * pythonia is first imported (so it is imported dynamically after we set it); a dead
 * Python child only fails pending calls at their timeout (we watch its exit); node
 * does not exit until python.exit() (close()).
 */
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../src/util/errors.js';
import { log } from '../src/util/log.js';
import { PYTHON_BIN } from '../src/paths.js';

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

export type NetworkConfig = { version: number; config?: Array<Record<string, unknown>>; ethernets?: Record<string, unknown> } & Record<
  string,
  unknown
>;

export interface NicMeta {
  mac: string;
  device_number: string | number | null;
  network_card: string | number | null;
  interface_id: string | null;
  ipv4s: string[];
  ipv6s: string[];
  subnet_ipv4_cidr: string | null;
  subnet_ipv6_cidrs: string[];
  ipv4_prefixes: string[];
  ipv6_prefixes: string[];
}

export interface HotplugState {
  enabled: boolean;
  reason: string;
}

export interface InstanceSummary {
  datasource: string;
  dsname: string | null;
  instance_id: string;
  platform: string | null;
  subplatform: string | null;
  cloud_name: string | null;
  macs: string[];
  primary_mac: string | null;
  nics: Record<string, NicMeta>;
  hotplug: HotplugState;
  /** NICs whose metadata the bridge refused at the last crawl (invalid values): MAC → why. */
  rejected_nics?: Record<string, string>;
  /** The same entries in detail: whether the key is a MAC at all, and the MAC its `mac` leaf names (if one). */
  rejected_entries?: Record<string, RejectedEntry>;
}

export interface RejectedEntry {
  why: string;
  key_is_mac: boolean;
  mac: string | null;
}

export interface PreviewFile {
  path: string;
  content: string;
  current: string | null;
  changed: boolean;
}

/** A failure reported by the Python side or by the bridge itself; one line. */
export class BridgeError extends UserError {
  constructor(
    message: string,
    readonly kind: string,
  ) {
    super(message, 1);
    this.name = 'BridgeError';
  }
}

export interface RefreshOptions {
  /** Seconds per metadata request. */
  timeout?: number;
  /** Seconds to wait for the metadata service to answer at all. */
  maxWait?: number;
}

export interface Bridge {
  readonly pythonPid: number | undefined;
  open(objPkl?: string): Promise<{ obj_pkl: string; summary: InstanceSummary }>;
  summary(): Promise<InstanceSummary>;
  hotplugState(): Promise<HotplugState>;
  networkConfig(): Promise<NetworkConfig | null>;
  refresh(opts?: RefreshOptions): Promise<{ duration_ms: number; summary: InstanceSummary; network_config: NetworkConfig }>;
  /** Persist the datasource; returns the summary of what was stored. */
  store(networkConfigJson?: string): Promise<{ summary: InstanceSummary }>;
  preview(netcfg?: NetworkConfig): Promise<{ renderer: string; network_config: NetworkConfig; files: PreviewFile[] }>;
  applyNetwork(netcfg?: NetworkConfig, bringUp?: boolean): Promise<{ failed: boolean; duration_ms: number }>;
  bringDown(ifname: string): Promise<{ done: boolean; activator: string }>;
  /** Activator bring-up of each interface; every one is tried. */
  bringUp(ifnames: string[]): Promise<Record<string, boolean>>;
  /** MACs the metadata service lists now (one cheap request); supported=false outside Ec2. */
  /** Re-crawl only the network subtree (Ec2 family); supported=false elsewhere (use refresh()). */
  refreshNetwork(timeoutS?: number): Promise<{ supported: false } | { supported: true; duration_ms: number; summary: InstanceSummary; network_config: NetworkConfig }>;
  /** Network config recomputed from cached metadata (no crawl); drops NICs no longer present. */
  rederive(): Promise<{ network_config: NetworkConfig | null; summary: InstanceSummary }>;
  /** `others`: entries of the listing that are not MACs (no device can ever match them). */
  probeMacs(timeoutS?: number): Promise<{ supported: boolean; macs: string[]; others: string[] }>;
  close(): Promise<void>;
}

interface PyResult {
  ok: boolean;
  kind?: string;
  error?: string;
  [k: string]: unknown;
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

let pythoniaMod: any | undefined;

async function loadPythonia(pythonBin: string): Promise<any> {
  if (pythoniaMod) return pythoniaMod;
  try {
    accessSync(pythonBin, constants.X_OK);
  } catch {
    // pythonia would crash node with an unhandled spawn 'error' event instead.
    throw new BridgeError(`python interpreter ${pythonBin} not found or not executable (set PYTHON_BIN)`, 'NoPython');
  }
  process.env.PYTHON_BIN = pythonBin;
  const m = await import('pythonia');
  pythoniaMod = (m as any).default ?? m;
  return pythoniaMod;
}

export interface StartOptions {
  pythonBin?: string;
  /** Default per-call timeout (ms). */
  timeoutMs?: number;
}

export async function startBridge(opts: StartOptions = {}): Promise<Bridge> {
  const pythonBin = opts.pythonBin ?? PYTHON_BIN;
  const defaultTimeout = opts.timeoutMs ?? 120_000;
  const py = await loadPythonia(pythonBin);
  if (!py.com.proc) py.com.start();
  const proc = py.com.proc as import('node:child_process').ChildProcess;
  let exited: string | undefined;
  let onExit: ((why: string) => void)[] = [];
  proc.on('error', (e: Error) => {
    exited = `python failed to start: ${e.message}`;
    onExit.forEach((f) => f(exited!));
  });
  proc.on('exit', (code, signal) => {
    exited = `python bridge process exited (${signal ?? `code ${code}`})`;
    onExit.forEach((f) => f(exited!));
  });
  let mod: any;
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
    mod = await Promise.race([py.python(BRIDGE_PY), loadDeath]);
  } catch (e) {
    if (e instanceof BridgeError) throw e;
    throw new BridgeError(
      `cannot load bridge module with ${pythonBin}: ${pythonErrorLine((e as Error).stack) ?? (e as Error).message}`,
      'BridgeLoad',
    );
  } finally {
    onExit = onExit.filter((f) => f !== onLoadDeath);
  }

  async function call(name: string, args: unknown[], timeoutMs = defaultTimeout): Promise<PyResult> {
    if (exited) throw new BridgeError(exited, 'BridgeDead');
    let died!: (why: string) => void;
    const death = new Promise<never>((_, reject) => {
      died = (why) => reject(new BridgeError(`${name}: ${why}`, 'BridgeDead'));
      onExit.push(died);
    });
    try {
      const p = (async () => {
        const r = await mod[`${name}$`](...args, { $timeout: timeoutMs });
        return (typeof r?.valueOf === 'function' ? await r.valueOf() : r) as PyResult;
      })();
      const res = await Promise.race([p, death]);
      if (!res || typeof res !== 'object') throw new BridgeError(`${name}: bridge returned no result`, 'BridgeProtocol');
      if (!res.ok) throw new BridgeError(res.error ?? `${name} failed`, res.kind ?? 'BridgeError');
      return res;
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
  }

  return {
    get pythonPid() {
      return proc.pid;
    },
    async open(objPkl) {
      const r = await call('open_instance', [objPkl ?? null]);
      return { obj_pkl: r.obj_pkl as string, summary: r.summary as InstanceSummary };
    },
    async summary() {
      return (await call('summary', [])).summary as InstanceSummary;
    },
    async hotplugState() {
      const r = await call('hotplug_state', []);
      return { enabled: r.enabled as boolean, reason: r.reason as string };
    },
    async networkConfig() {
      return ((await call('network_config', [])).network_config ?? null) as NetworkConfig | null;
    },
    async refresh(o = {}) {
      const timeout = o.timeout ?? 2;
      const maxWait = o.maxWait ?? 10;
      const r = await call('refresh', [timeout, maxWait, 0], (maxWait + timeout * 80 + 30) * 1000);
      return r as unknown as { duration_ms: number; summary: InstanceSummary; network_config: NetworkConfig };
    },
    async store(networkConfigJson) {
      const r = await call('store', [networkConfigJson ?? null]);
      return { summary: r.summary as unknown as InstanceSummary };
    },
    async preview(netcfg) {
      const r = await call('preview', [netcfg ? JSON.stringify(netcfg) : null]);
      return r as unknown as { renderer: string; network_config: NetworkConfig; files: PreviewFile[] };
    },
    async applyNetwork(netcfg, bringUp = true) {
      const r = await call('apply_network', [netcfg ? JSON.stringify(netcfg) : null, bringUp], 300_000);
      return { failed: r.failed as boolean, duration_ms: r.duration_ms as number };
    },
    async bringDown(ifname) {
      const r = await call('bring_down', [ifname], 120_000);
      return { done: r.done as boolean, activator: r.activator as string };
    },
    async bringUp(ifnames) {
      const r = await call('bring_up', [ifnames], 120_000 + ifnames.length * 60_000);
      const results = r.results as Record<string, boolean>;
      // Per interface, as 'brought down' in the worker (the bridge runs them concurrently).
      const ms = (r.durations_ms ?? {}) as Record<string, number>;
      for (const [iface, ok] of Object.entries(results)) log('debug', 'brought up', { iface, ok, duration_ms: ms[iface], activator: r.activator as string });
      return results;
    },
    async refreshNetwork(timeoutS = 2) {
      const r = await call('refresh_network', [timeoutS], 120_000);
      return r.supported ? (r as any) : { supported: false as const };
    },
    async rederive() {
      const r = await call('rederive', []);
      return { network_config: (r.network_config ?? null) as NetworkConfig | null, summary: r.summary as InstanceSummary };
    },
    async probeMacs(timeoutS = 1) {
      const r = await call('probe_macs', [timeoutS], (timeoutS * 3 + 10) * 1000);
      return { supported: r.supported as boolean, macs: r.macs as string[], others: (r.others ?? []) as string[] };
    },
    async close() {
      try {
        py.python.exit();
      } catch {
        /* already gone */
      }
    },
  };
}
