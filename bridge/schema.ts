/**
 * Checks of every reply the Python bridge sends, at the seam: each call's reply is rebuilt from
 * checked fields, so nothing malformed (a changed Python side, a pythonia quirk) travels further
 * into TS as a wrong type. A mismatch is a ReplyMismatch naming the field; index.ts turns it
 * into a one-line BridgeError of kind 'BridgeProtocol' naming the call.
 */
import type {
  HotplugState,
  InstanceSummary,
  NetInterface,
  NetworkConfig,
  NetworkStackInfo,
  NicMeta,
  PortMeta,
  PreviewFile,
  RejectedEntry,
} from './types.js';

/** A reply field that is not what the call promises: `at` is its path in the reply. */
export class ReplyMismatch extends Error {
  constructor(
    readonly at: string,
    readonly expected: string,
    got: unknown,
  ) {
    super(`${at} is not ${expected} (got ${describe(got)})`);
    this.name = 'ReplyMismatch';
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  return typeof v === 'object' ? 'an object' : typeof v;
}

type Check<T> = (v: unknown, at: string) => T;

// ------------------------------------------------------------------------- building blocks

export function obj(v: unknown, at: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ReplyMismatch(at, 'an object', v);
  // A plain JSON object: every own key is a field (no prototype magic can come from JSON).
  return Object.fromEntries(Object.entries(v));
}

export const str: Check<string> = (v, at) => {
  if (typeof v !== 'string') throw new ReplyMismatch(at, 'a string', v);
  return v;
};

export const num: Check<number> = (v, at) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ReplyMismatch(at, 'a number', v);
  return v;
};

/** A non-negative integer (a count). */
export const count: Check<number> = (v, at) => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ReplyMismatch(at, 'a count (integer >= 0)', v);
  return v;
};

export const bool: Check<boolean> = (v, at) => {
  if (typeof v !== 'boolean') throw new ReplyMismatch(at, 'a boolean', v);
  return v;
};

export function orNull<T>(c: Check<T>): Check<T | null> {
  return (v, at) => (v === null || v === undefined ? null : c(v, at));
}

export function list<T>(c: Check<T>): Check<T[]> {
  return (v, at) => {
    if (!Array.isArray(v)) throw new ReplyMismatch(at, 'an array', v);
    return v.map((x, i) => c(x, `${at}[${i}]`));
  };
}

export function dict<T>(c: Check<T>): Check<Record<string, T>> {
  return (v, at) => Object.fromEntries(Object.entries(obj(v, at)).map(([k, x]) => [k, c(x, `${at}[${JSON.stringify(k)}]`)]));
}

function oneOf<A, B>(a: Check<A>, b: Check<B>, expected: string): Check<A | B> {
  return (v, at) => {
    try {
      return a(v, at);
    } catch {
      try {
        return b(v, at);
      } catch {
        throw new ReplyMismatch(at, expected, v);
      }
    }
  };
}

// ------------------------------------------------------------------------- the bridge's data

export const networkConfig: Check<NetworkConfig> = (v, at) => {
  const o = obj(v, at);
  const out: NetworkConfig = { ...o, version: num(o.version, `${at}.version`) };
  // What TS reads of a config (interface names for v1 and v2); the rest is cloud-init's business.
  if (o.config !== undefined) out.config = list(obj)(o.config, `${at}.config`);
  if (o.ethernets !== undefined) out.ethernets = obj(o.ethernets, `${at}.ethernets`);
  return out;
};

export const netInterface: Check<NetInterface> = (v, at) => {
  const o = obj(v, at);
  return { name: str(o.name, `${at}.name`), mac: orNull(str)(o.mac, `${at}.mac`), id: str(o.id, `${at}.id`) };
};

export const interfaces = list(netInterface);

export const hotplugState: Check<HotplugState> = (v, at) => {
  const o = obj(v, at);
  return { enabled: bool(o.enabled, `${at}.enabled`), reason: str(o.reason, `${at}.reason`) };
};

const index = orNull(oneOf(str, num, 'a string or a number'));

export const nicMeta: Check<NicMeta> = (v, at) => {
  const o = obj(v, at);
  const strs = list(str);
  return {
    mac: str(o.mac, `${at}.mac`),
    device_number: index(o.device_number, `${at}.device_number`),
    network_card: index(o.network_card, `${at}.network_card`),
    interface_id: orNull(str)(o.interface_id, `${at}.interface_id`),
    ipv4s: strs(o.ipv4s, `${at}.ipv4s`),
    ipv6s: strs(o.ipv6s, `${at}.ipv6s`),
    subnet_ipv4_cidr: orNull(oneOf(str, strs, 'a string or a list of strings'))(o.subnet_ipv4_cidr, `${at}.subnet_ipv4_cidr`),
    subnet_ipv6_cidrs: strs(o.subnet_ipv6_cidrs, `${at}.subnet_ipv6_cidrs`),
    ipv4_prefixes: strs(o.ipv4_prefixes, `${at}.ipv4_prefixes`),
    ipv6_prefixes: strs(o.ipv6_prefixes, `${at}.ipv6_prefixes`),
  };
};

const portAddress = (v: unknown, at: string) => {
  const o = obj(v, at);
  return { address: str(o.address, `${at}.address`), prefixlen: num(o.prefixlen, `${at}.prefixlen`) };
};

export const portMeta: Check<PortMeta> = (v, at) => {
  const o = obj(v, at);
  return {
    mac: str(o.mac, `${at}.mac`),
    index: orNull(num)(o.index, `${at}.index`),
    name: orNull(str)(o.name, `${at}.name`),
    dhcp4: bool(o.dhcp4, `${at}.dhcp4`),
    dhcp6: bool(o.dhcp6, `${at}.dhcp6`),
    ipv4: list(portAddress)(o.ipv4, `${at}.ipv4`),
    ipv6: list(portAddress)(o.ipv6, `${at}.ipv6`),
    gateway4: orNull(str)(o.gateway4, `${at}.gateway4`),
    gateway6: orNull(str)(o.gateway6, `${at}.gateway6`),
    routes: list((r, ra) => {
      const x = obj(r, ra);
      return { dst: str(x.dst, `${ra}.dst`), gateway: str(x.gateway, `${ra}.gateway`) };
    })(o.routes, `${at}.routes`),
  };
};

const rejectedEntry: Check<RejectedEntry> = (v, at) => {
  const o = obj(v, at);
  return { why: str(o.why, `${at}.why`), key_is_mac: bool(o.key_is_mac, `${at}.key_is_mac`), mac: orNull(str)(o.mac, `${at}.mac`) };
};

export const summary: Check<InstanceSummary> = (v, at) => {
  const o = obj(v, at);
  const s: InstanceSummary = {
    datasource: str(o.datasource, `${at}.datasource`),
    dsname: orNull(str)(o.dsname, `${at}.dsname`),
    instance_id: str(o.instance_id, `${at}.instance_id`),
    platform: orNull(str)(o.platform, `${at}.platform`),
    subplatform: orNull(str)(o.subplatform, `${at}.subplatform`),
    cloud_name: orNull(str)(o.cloud_name, `${at}.cloud_name`),
    macs: list(str)(o.macs, `${at}.macs`),
    primary_mac: orNull(str)(o.primary_mac, `${at}.primary_mac`),
    nics: dict(nicMeta)(o.nics, `${at}.nics`),
    hotplug: hotplugState(o.hotplug, `${at}.hotplug`),
  };
  if (o.ports !== undefined) s.ports = dict(portMeta)(o.ports, `${at}.ports`);
  if (o.metadata_static !== undefined) s.metadata_static = bool(o.metadata_static, `${at}.metadata_static`);
  if (o.metadata_source !== undefined) s.metadata_source = orNull(str)(o.metadata_source, `${at}.metadata_source`) ?? undefined;
  if (o.rejected_nics !== undefined) s.rejected_nics = dict(str)(o.rejected_nics, `${at}.rejected_nics`);
  if (o.rejected_entries !== undefined) s.rejected_entries = dict(rejectedEntry)(o.rejected_entries, `${at}.rejected_entries`);
  return s;
};

const stack: Check<NetworkStackInfo> = (v, at) => {
  const o = obj(v, at);
  return { renderer: orNull(str)(o.renderer, `${at}.renderer`), activator: orNull(str)(o.activator, `${at}.activator`) };
};

const previewFile: Check<PreviewFile> = (v, at) => {
  const o = obj(v, at);
  return { path: str(o.path, `${at}.path`), content: str(o.content, `${at}.content`), current: orNull(str)(o.current, `${at}.current`), changed: bool(o.changed, `${at}.changed`) };
};

// ------------------------------------------------------------------------- one check per call

/** The envelope every call returns: {ok: true, …} or {ok: false, kind, error}. */
export type Envelope = { ok: true; fields: Record<string, unknown> } | { ok: false; kind: string | undefined; error: string | undefined };

export function envelope(v: unknown): Envelope {
  const o = obj(v, 'reply');
  if (bool(o.ok, 'ok')) return { ok: true, fields: o };
  return { ok: false, kind: o.kind === undefined ? undefined : str(o.kind, 'kind'), error: o.error === undefined ? undefined : str(o.error, 'error') };
}

type Fields = Record<string, unknown>;

export const replies = {
  open_instance: (r: Fields) => ({ obj_pkl: str(r.obj_pkl, 'obj_pkl'), summary: summary(r.summary, 'summary'), stack: stack(r.stack, 'stack') }),
  summary: (r: Fields) => summary(r.summary, 'summary'),
  hotplug_state: (r: Fields) => hotplugState(r, 'reply'),
  network_config: (r: Fields) => {
    const cfg = orNull(networkConfig)(r.network_config, 'network_config');
    return cfg ? { network_config: cfg, interfaces: interfaces(r.interfaces, 'interfaces') } : null;
  },
  refresh: (r: Fields) => ({
    duration_ms: num(r.duration_ms, 'duration_ms'),
    summary: summary(r.summary, 'summary'),
    network_config: networkConfig(r.network_config, 'network_config'),
    interfaces: interfaces(r.interfaces, 'interfaces'),
  }),
  store: (r: Fields) => ({ summary: summary(r.summary, 'summary') }),
  preview: (r: Fields) => ({
    renderer: str(r.renderer, 'renderer'),
    network_config: networkConfig(r.network_config, 'network_config'),
    files: list(previewFile)(r.files, 'files'),
    interfaces: interfaces(r.interfaces, 'interfaces'),
  }),
  apply_network: (r: Fields) => ({ failed: bool(r.failed, 'failed'), duration_ms: num(r.duration_ms, 'duration_ms'), interfaces: interfaces(r.interfaces, 'interfaces') }),
  bring_down: (r: Fields) => ({ done: bool(r.done, 'done'), activator: str(r.activator, 'activator') }),
  bring_up: (r: Fields) => ({
    results: dict(bool)(r.results, 'results'),
    activator: str(r.activator, 'activator'),
    durations_ms: r.durations_ms === undefined ? {} : dict(num)(r.durations_ms, 'durations_ms'),
  }),
  refresh_network: (r: Fields) =>
    bool(r.supported, 'supported')
      ? {
          supported: true as const,
          duration_ms: num(r.duration_ms, 'duration_ms'),
          summary: summary(r.summary, 'summary'),
          network_config: networkConfig(r.network_config, 'network_config'),
          interfaces: interfaces(r.interfaces, 'interfaces'),
        }
      : { supported: false as const },
  rederive: (r: Fields) => {
    const cfg = orNull(networkConfig)(r.network_config, 'network_config');
    // No config, no interfaces, whatever the reply lists.
    return { network_config: cfg, summary: summary(r.summary, 'summary'), interfaces: cfg ? interfaces(r.interfaces, 'interfaces') : [] };
  },
  cloud_config: (r: Fields) => cloudConfigReply(r),
  probe_macs: (r: Fields) => ({
    supported: bool(r.supported, 'supported'),
    macs: list(str)(r.macs, 'macs'),
    others: r.others === undefined ? [] : list(str)(r.others, 'others'),
    /** The source cannot change while the instance runs (a config drive read without a fallback). */
    ...(r.static === undefined ? {} : { static: bool(r.static, 'static') }),
  }),
  set_sources: (r: Fields) => ({ md_fallback: orNull(str)(r.md_fallback, 'md_fallback') }),
  /** One small read: may the network metadata have changed (hb_probe.py)? */
  probe_network: (r: Fields) =>
    bool(r.supported, 'supported')
      ? {
          supported: true as const,
          changed: bool(r.changed, 'changed'),
          resource: str(r.resource, 'resource'),
          requests: count(r.requests, 'requests'),
          not_modified: bool(r.not_modified, 'not_modified'),
          targets: count(r.targets, 'targets'),
        }
      : { supported: false as const },
};

/** A JSON value as Python's json.dumps makes it (no NaN/Infinity reach here: JSON.parse would fail). */
function jsonValue(v: unknown, at: string, depth = 0): unknown {
  if (depth > 32) throw new ReplyMismatch(at, 'nested less than 32 deep', v);
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return v;
  if (Array.isArray(v)) return v.map((x, i) => jsonValue(x, `${at}[${i}]`, depth + 1));
  const o = obj(v, at);
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, jsonValue(x, `${at}["${k}"]`, depth + 1)]));
}

export const cloudConfigReply = (r: Fields) => {
  const present = bool(r.present, 'present');
  const config = r.config === null ? null : (jsonValue(obj(r.config, 'config'), 'config') as Record<string, unknown>);
  if (!present && config !== null) throw new ReplyMismatch('config', 'null when the key is absent', r.config);
  return { present, config, type: str(r.type, 'type') };
};

export type CallName = keyof typeof replies;
export type Reply<N extends CallName> = ReturnType<(typeof replies)[N]>;
