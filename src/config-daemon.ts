/**
 * The daemon's parts of config.yaml that are more than a number: its listeners (unix socket
 * always; FIFO and TCP off unless enabled) and its URL event sources. Validated with the same
 * Checker as the rest (config.ts), so errors read the same.
 */
import { isIP } from 'node:net';
import type { Checker, EventPolicy } from './config.js';

export interface FifoListenerConfig {
  enabled: boolean;
  path: string;
}

export interface TcpListenerConfig {
  enabled: boolean;
  /** Bind address; 127.0.0.1 unless given. */
  address: string;
  port: number;
  /** The token every request must carry (a 0600 file of root's). */
  token_file: string;
  max_request_bytes: number;
  requests_per_second: number;
  /** status, ping, jobs, wait and subscribe without the token. */
  read_only_without_token: boolean;
  max_connections: number;
}

export interface ListenersConfig {
  fifo: FifoListenerConfig;
  tcp: TcpListenerConfig;
}

export interface UrlSourceConfig {
  url: string;
  interval_seconds: number;
  /** Per request; a long-poll endpoint (one that answers when something changed) wants it long. */
  timeout_seconds: number;
  /** What a change runs; null: events.url_change. */
  policy: EventPolicy | null;
}

export const defaultListeners: ListenersConfig = {
  fifo: { enabled: false, path: '/run/cloud-hotplug/daemon.fifo' },
  tcp: {
    enabled: false,
    address: '127.0.0.1',
    port: 7117,
    token_file: '/etc/cloud-hotplug/tcp.token',
    max_request_bytes: 16384,
    requests_per_second: 20,
    read_only_without_token: false,
    max_connections: 32,
  },
};

function absPath(c: Checker, v: unknown, key: string, dflt: string, max = 4096): string {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !v.startsWith('/') || Buffer.byteLength(v) > max || /[\0-\x1f\x7f]/.test(v) || v.split('/').includes('..')) {
    c.fail(key, `must be an absolute path of at most ${max} bytes without ..`);
  }
  return v;
}

export function validateListeners(c: Checker, v: unknown): ListenersConfig {
  const d = defaultListeners;
  const l = c.section(v, 'daemon.listeners', ['fifo', 'tcp']);
  const f = c.section(l.fifo, 'daemon.listeners.fifo', ['enabled', 'path']);
  const t = c.section(l.tcp, 'daemon.listeners.tcp', ['enabled', 'address', 'port', 'token_file', 'max_request_bytes', 'requests_per_second', 'read_only_without_token', 'max_connections']);
  let address = d.tcp.address;
  if (t.address !== undefined) {
    if (typeof t.address !== 'string' || !isIP(t.address)) c.fail('daemon.listeners.tcp.address', 'must be an IPv4 or IPv6 address');
    address = t.address;
  }
  return {
    fifo: {
      enabled: c.bool(f.enabled, 'daemon.listeners.fifo.enabled', d.fifo.enabled),
      path: absPath(c, f.path, 'daemon.listeners.fifo.path', d.fifo.path),
    },
    tcp: {
      enabled: c.bool(t.enabled, 'daemon.listeners.tcp.enabled', d.tcp.enabled),
      address,
      port: c.number(t.port, 'daemon.listeners.tcp.port', 0, 65535, d.tcp.port, true),
      token_file: absPath(c, t.token_file, 'daemon.listeners.tcp.token_file', d.tcp.token_file),
      max_request_bytes: c.number(t.max_request_bytes, 'daemon.listeners.tcp.max_request_bytes', 256, 1 << 20, d.tcp.max_request_bytes, true),
      requests_per_second: c.number(t.requests_per_second, 'daemon.listeners.tcp.requests_per_second', 1, 10_000, d.tcp.requests_per_second),
      read_only_without_token: c.bool(t.read_only_without_token, 'daemon.listeners.tcp.read_only_without_token', d.tcp.read_only_without_token),
      max_connections: c.number(t.max_connections, 'daemon.listeners.tcp.max_connections', 1, 1024, d.tcp.max_connections, true),
    },
  };
}

export function validateUrlSources(c: Checker, v: unknown): UrlSourceConfig[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) c.fail('daemon.url_sources', 'must be a list of {url, interval_seconds, timeout_seconds, policy}');
  if (v.length > 16) c.fail('daemon.url_sources', 'may list at most 16 URLs');
  return v.map((s, i) => {
    const key = `daemon.url_sources[${i}]`;
    const o = c.section(s, key, ['url', 'interval_seconds', 'timeout_seconds', 'policy']);
    let url: URL | null = null;
    try {
      url = typeof o.url === 'string' && o.url.length <= 2048 ? new URL(o.url) : null;
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) c.fail(`${key}.url`, 'must be an http:// or https:// URL of at most 2048 characters');
    return {
      url: url.href,
      interval_seconds: c.number(o.interval_seconds, `${key}.interval_seconds`, 1, 86_400, 30),
      timeout_seconds: c.number(o.timeout_seconds, `${key}.timeout_seconds`, 1, 600, 10),
      policy: o.policy === undefined || o.policy === null ? null : c.policy(o.policy, `${key}.policy`, 'apply'),
    };
  });
}
