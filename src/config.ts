/**
 * cloud-hotplug's own settings, /etc/cloud-hotplug/config.yaml. Every key is optional; a missing
 * file means the defaults. Anything unknown or out of range is a one-line error naming the key,
 * because a typo silently ignored on a root network daemon is worse than a refusal to start.
 * Lists given in the file REPLACE the defaults (copy the default deny_names to extend them).
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { paths } from './paths.js';
import { UserError, oneLine } from './util/errors.js';
import { IFNAME_RE, MAC_RE } from './events/event.js';
import type { FilterConfig } from './pipeline/filter.js';
import { defaultListeners, validateListeners, validateUrlSources, type ListenersConfig, type UrlSourceConfig } from './config-daemon.js';

/** What to do for a kind of event: run the normal apply, drop it, do a full reconcile, or run a command (argv, no shell). */
export type EventPolicy = 'apply' | 'ignore' | 'reconcile' | { run: string[] };

export interface Config {
  retry: {
    /** Total time to wait for metadata to show a new NIC, per batch. */
    budget_seconds: number;
    /** First backoff delay. */
    initial_ms: number;
    /** Cap on a single backoff delay. */
    max_ms: number;
  };
  /** Which interfaces are ours (see filter.ts); glob patterns with * and ?. */
  filter: FilterConfig;
  routing: {
    /** Policy routing per secondary NIC so replies leave by the NIC they came in on. */
    enabled: boolean;
    /** Route table for a NIC = table_base + its device index. */
    table_base: number;
    /** Interface (name or MAC) that keeps the main table's default route; null = the datasource's primary. */
    primary: string | null;
  };
  daemon: {
    /** Seconds between full re-reads of the network metadata where the datasource has no cheap probe (or the probe is off). */
    poll_interval_seconds: number;
    /** Seconds between the metadata poller's probes (one small request each; a change triggers a full re-read); 0 = off. */
    probe_interval_seconds: number;
    /** Unix socket the daemon listens on for CLI requests. */
    socket: string;
    /** FIFO and TCP listeners (config-daemon.ts), off unless enabled. */
    listeners: ListenersConfig;
    /** HTTP URLs polled for changes (ETag / If-None-Match); a change runs events.url_change. */
    url_sources: UrlSourceConfig[];
  };
  /**
   * A config drive is written once at boot: a NIC attached later is never in it. Opt-in: read
   * network_data.json from the OpenStack metadata service instead, when it answers.
   */
  configdrive: {
    metadata_fallback: boolean;
    metadata_url: string;
  };
  events: {
    add: EventPolicy;
    remove: EventPolicy;
    /** Metadata changed without a device event (e.g. a secondary IP was assigned). */
    metadata_change: EventPolicy;
    link_down: EventPolicy;
    /** A URL source saw a change (daemon.url_sources). */
    url_change: EventPolicy;
  };
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    Object.values(o).forEach(deepFreeze);
    Object.freeze(o);
  }
  return o;
}

export const defaultConfig: Readonly<Config> = deepFreeze({
  retry: { budget_seconds: 60, initial_ms: 150, max_ms: 5000 },
  filter: {
    allow_drivers: [],
    deny_drivers: [],
    allow_names: [],
    deny_names: ['lo', 'docker*', 'veth*', 'br-*', 'virbr*', 'cni*', 'flannel*', 'cali*', 'weave*', 'kube-*', 'tun*', 'tap*', 'vxlan*'],
  },
  routing: { enabled: true, table_base: 10000, primary: null },
  daemon: { poll_interval_seconds: 10, probe_interval_seconds: 2.5, socket: '/run/cloud-hotplug/daemon.sock', listeners: defaultListeners, url_sources: [] },
  configdrive: { metadata_fallback: false, metadata_url: 'http://169.254.169.254' },
  events: { add: 'apply', remove: 'apply', metadata_change: 'apply', link_down: 'reconcile', url_change: 'apply' },
});

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export class Checker {
  constructor(private readonly name: string) {}

  fail(key: string, msg: string): never {
    throw new UserError(`${this.name}: ${key} ${msg}`);
  }

  /** A mapping with only the allowed keys; null/absent = {} (use defaults). */
  section(v: unknown, key: string, allowed: readonly string[]): Obj {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) this.fail(key, 'must be a mapping');
    for (const k of Object.keys(v)) if (!allowed.includes(k)) this.fail(`${key}.${k}`, `is not a known key (known: ${allowed.join(', ')})`);
    return v;
  }

  number(v: unknown, key: string, min: number, max: number, dflt: number, integer = false): number {
    if (v === undefined) return dflt;
    const ok = typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max && (!integer || Number.isInteger(v));
    if (!ok) this.fail(key, `must be ${integer ? 'an integer' : 'a number'} between ${min} and ${max}`);
    return v as number;
  }

  bool(v: unknown, key: string, dflt: boolean): boolean {
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') this.fail(key, 'must be true or false');
    return v;
  }

  globs(v: unknown, key: string, dflt: readonly string[]): string[] {
    if (v === undefined || v === null) return [...dflt];
    if (!Array.isArray(v)) this.fail(key, 'must be a list of glob patterns');
    return v.map((g, i) => {
      if (typeof g !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(g)) this.fail(`${key}[${i}]`, 'must be a pattern of 1-64 printable characters without spaces');
      return g;
    });
  }

  policy(v: unknown, key: string, dflt: EventPolicy): EventPolicy {
    if (v === undefined || v === null) return typeof dflt === 'string' ? dflt : { run: [...dflt.run] };
    if (v === 'apply' || v === 'ignore' || v === 'reconcile') return v;
    if (!isObj(v)) this.fail(key, 'must be apply, ignore, reconcile or {run: [argv...]}');
    const o = this.section(v, key, ['run']);
    const run = o.run;
    if (!Array.isArray(run) || run.length === 0) this.fail(`${key}.run`, 'must be a non-empty list of strings (argv, no shell)');
    run.forEach((a, i) => {
      if (typeof a !== 'string' || a === '' || a.includes('\0')) this.fail(`${key}.run[${i}]`, 'must be a non-empty string');
    });
    // Run as root: no PATH lookup.
    if (!(run[0] as string).startsWith('/')) this.fail(`${key}.run[0]`, 'must be an absolute path');
    return { run: [...(run as string[])] };
  }
}

/** daemon.probe_interval_seconds: 0 (no probe) or 1..3600 (the idle request rate is about 60 / it per minute). */
function probeInterval(c: Checker, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v === 0 || (v >= 1 && v <= 3600))) c.fail('daemon.probe_interval_seconds', 'must be 0 (off) or a number between 1 and 3600');
  return v;
}

/** Validates a parsed YAML document (null = empty file) into a complete Config. */
export function validateConfig(doc: unknown, name = 'config.yaml'): Config {
  const c: Checker = new Checker(name); // explicit type: lets fail()'s never narrow
  const d = defaultConfig;
  if (doc !== undefined && doc !== null && !isObj(doc)) c.fail('the document', 'must be a mapping');
  const top = c.section(doc, '(top level)', ['retry', 'filter', 'routing', 'daemon', 'configdrive', 'events']);

  const r = c.section(top.retry, 'retry', ['budget_seconds', 'initial_ms', 'max_ms']);
  const retry = {
    budget_seconds: c.number(r.budget_seconds, 'retry.budget_seconds', 1, 3600, d.retry.budget_seconds),
    initial_ms: c.number(r.initial_ms, 'retry.initial_ms', 1, 60_000, d.retry.initial_ms),
    max_ms: c.number(r.max_ms, 'retry.max_ms', 1, 600_000, d.retry.max_ms),
  };
  if (retry.max_ms < retry.initial_ms) c.fail('retry.max_ms', `must be at least retry.initial_ms (${retry.initial_ms})`);

  const f = c.section(top.filter, 'filter', ['allow_drivers', 'deny_drivers', 'allow_names', 'deny_names']);
  const filter: FilterConfig = {
    allow_drivers: c.globs(f.allow_drivers, 'filter.allow_drivers', d.filter.allow_drivers),
    deny_drivers: c.globs(f.deny_drivers, 'filter.deny_drivers', d.filter.deny_drivers),
    allow_names: c.globs(f.allow_names, 'filter.allow_names', d.filter.allow_names),
    deny_names: c.globs(f.deny_names, 'filter.deny_names', d.filter.deny_names),
  };

  const ro = c.section(top.routing, 'routing', ['enabled', 'table_base', 'primary']);
  let primary: string | null = d.routing.primary;
  if (ro.primary !== undefined && ro.primary !== null) {
    const p = typeof ro.primary === 'string' ? ro.primary : '';
    if (MAC_RE.test(p.toLowerCase())) primary = p.toLowerCase();
    else if (IFNAME_RE.test(p) && p !== '.' && p !== '..') primary = p;
    else c.fail('routing.primary', 'must be null, an interface name or a MAC address');
  }
  const routing = {
    enabled: c.bool(ro.enabled, 'routing.enabled', d.routing.enabled),
    // Leave room for 256 NICs below 2^32 and stay clear of the reserved tables 0 and 253-255.
    table_base: c.number(ro.table_base, 'routing.table_base', 256, 4_294_967_039, d.routing.table_base, true),
    primary,
  };

  const da = c.section(top.daemon, 'daemon', ['poll_interval_seconds', 'probe_interval_seconds', 'socket', 'listeners', 'url_sources']);
  let socket = d.daemon.socket;
  if (da.socket !== undefined) {
    // sun_path holds 108 bytes including the terminating NUL.
    const s = da.socket;
    if (typeof s !== 'string' || !s.startsWith('/') || Buffer.byteLength(s) > 107 || /[\0-\x1f\x7f]/.test(s)) {
      c.fail('daemon.socket', 'must be an absolute path of at most 107 bytes');
    }
    socket = s;
  }
  const daemon = {
    poll_interval_seconds: c.number(da.poll_interval_seconds, 'daemon.poll_interval_seconds', 1, 3600, d.daemon.poll_interval_seconds),
    probe_interval_seconds: probeInterval(c, da.probe_interval_seconds, d.daemon.probe_interval_seconds),
    socket,
    listeners: validateListeners(c, da.listeners),
    url_sources: validateUrlSources(c, da.url_sources),
  };

  const cd = c.section(top.configdrive, 'configdrive', ['metadata_fallback', 'metadata_url']);
  let metadataUrl = d.configdrive.metadata_url;
  if (cd.metadata_url !== undefined) {
    if (typeof cd.metadata_url !== 'string' || !/^https?:\/\/[A-Za-z0-9.:[\]-]{1,100}\/?$/.test(cd.metadata_url)) c.fail('configdrive.metadata_url', 'must be an http(s) base URL such as http://169.254.169.254');
    metadataUrl = cd.metadata_url.replace(/\/$/, '');
  }
  const configdrive = { metadata_fallback: c.bool(cd.metadata_fallback, 'configdrive.metadata_fallback', d.configdrive.metadata_fallback), metadata_url: metadataUrl };

  const e = c.section(top.events, 'events', ['add', 'remove', 'metadata_change', 'link_down', 'url_change']);
  const events = {
    add: c.policy(e.add, 'events.add', d.events.add),
    remove: c.policy(e.remove, 'events.remove', d.events.remove),
    metadata_change: c.policy(e.metadata_change, 'events.metadata_change', d.events.metadata_change),
    link_down: c.policy(e.link_down, 'events.link_down', d.events.link_down),
    url_change: c.policy(e.url_change, 'events.url_change', d.events.url_change),
  };

  return { retry, filter, routing, daemon, configdrive, events };
}

/** Parses YAML text into a document (not yet validated); syntax errors become one-line UserErrors. */
export async function parseConfigDoc(text: string, name = 'config.yaml'): Promise<unknown> {
  // Imported lazily: with no config file (the common case) the yaml package is never loaded.
  const { parse } = await import('yaml');
  try {
    return parse(text, { prettyErrors: false, uniqueKeys: true }) as unknown;
  } catch (err) {
    throw new UserError(`${name}: invalid YAML: ${oneLine(err)}`);
  }
}

/** Parses and validates YAML text. */
export async function parseConfig(text: string, name = 'config.yaml'): Promise<Config> {
  return validateConfig(await parseConfigDoc(text, name), name);
}

/** The config file's document; null for a missing file (the defaults). */
export async function readConfigDoc(path: string = paths.configFile): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new UserError(`${basename(path)}: cannot read ${path}: ${oneLine(e)}`);
  }
  return parseConfigDoc(text, basename(path));
}

/** Reads and validates the config file; a missing file yields the defaults. */
export async function loadConfig(path: string = paths.configFile): Promise<Config> {
  return validateConfig(await readConfigDoc(path), basename(path));
}
