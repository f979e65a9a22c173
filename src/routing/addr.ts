/**
 * Strict IPv4/IPv6 address and prefix parsing for values that come from instance metadata
 * or from `ip -json` output. Everything is normalised to the text `ip` prints (dotted quad;
 * RFC 5952 lower-case IPv6), so desired and actual state compare as plain strings.
 * Nothing here accepts what `ip`/inet_aton would read differently from what it looks like
 * (leading zeros, which inet_aton reads as octal; zone ids; dotted IPv4 tails in IPv6).
 */
export type Family = 4 | 6;

export interface Ip {
  family: Family;
  value: bigint;
  /** Canonical text. */
  text: string;
}

export interface Prefix {
  family: Family;
  /** Network address (host bits zero). */
  network: bigint;
  len: number;
  /** Canonical "network/len". */
  text: string;
}

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const V4_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
const HEXGROUP_RE = /^[0-9a-fA-F]{1,4}$/;

export const bits = (f: Family): number => (f === 4 ? 32 : 128);

export function formatIPv4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
}

/** RFC 5952, as glibc's inet_ntop prints it (longest run of two or more zero groups compressed, first on a tie). */
export function formatIPv6(v: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

export function formatIp(family: Family, v: bigint): string {
  return family === 4 ? formatIPv4(v) : formatIPv6(v);
}

function parseIPv4(s: string): bigint | null {
  const m = V4_RE.exec(s);
  if (!m) return null;
  return m.slice(1, 5).reduce((acc, o) => (acc << 8n) | BigInt(o), 0n);
}

function parseIPv6(s: string): bigint | null {
  if (s.length > 39 || s.length < 2) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const part = (h: string): string[] | null => {
    if (h === '') return [];
    const gs = h.split(':');
    return gs.every((x) => HEXGROUP_RE.test(x)) ? gs : null;
  };
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  if (!head || !tail) return null;
  let groups: string[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...Array<string>(missing).fill('0'), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  return groups.reduce((acc, x) => (acc << 16n) | BigInt(parseInt(x, 16)), 0n);
}

/** A single address, either family (or only `family`); null if it is not one. */
export function parseIp(s: unknown, family?: Family): Ip | null {
  if (typeof s !== 'string') return null;
  if (family !== 6) {
    const v = parseIPv4(s);
    if (v !== null) return { family: 4, value: v, text: formatIPv4(v) };
  }
  if (family !== 4 && s.includes(':')) {
    const v = parseIPv6(s);
    if (v !== null) return { family: 6, value: v, text: formatIPv6(v) };
  }
  return null;
}

export function mask(family: Family, len: number): bigint {
  const b = BigInt(bits(family));
  return ((1n << b) - 1n) ^ ((1n << (b - BigInt(len))) - 1n);
}

/**
 * "addr/len" with host bits zero. A bare address is accepted as a host prefix only when
 * `allowBare`. Returns a reason string when invalid.
 */
export function parsePrefix(s: unknown, opts: { family?: Family; allowBare?: boolean; minLen?: number; maxLen?: number } = {}): Prefix | string {
  if (typeof s !== 'string' || s.length > 64) return 'not a string of at most 64 characters';
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const ip = parseIp(addrText, opts.family);
  if (!ip) return `not an IPv${opts.family ?? '4/6'} address`;
  const max = bits(ip.family);
  let len = max;
  if (slash < 0) {
    if (!opts.allowBare) return 'missing "/prefix-length"';
  } else {
    const l = s.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(l) || Number(l) > max) return `prefix length must be 0-${max}`;
    len = Number(l);
  }
  const lo = opts.minLen ?? 0;
  const hi = Math.min(opts.maxLen ?? max, max);
  if (len < lo || len > hi) return `prefix length ${len} outside ${lo}-${hi}`;
  const network = ip.value & mask(ip.family, len);
  if (network !== ip.value) return `host bits set (network is ${formatIp(ip.family, network)}/${len})`;
  return { family: ip.family, network, len, text: `${formatIp(ip.family, network)}/${len}` };
}

export function contains(p: Prefix, ip: Ip): boolean {
  return p.family === ip.family && (ip.value & mask(p.family, p.len)) === p.network;
}

const inRange = (ip: Ip, cidr: string): boolean => {
  const p = parsePrefix(cidr);
  return typeof p !== 'string' && contains(p, ip);
};

/**
 * Why `ip` cannot be an interface's own unicast address (null if it can).
 * Link-local IPv6 is allowed only when `allowLinkLocal` (gateways learnt from router advertisements).
 */
export function notUnicast(ip: Ip, allowLinkLocal = false): string | null {
  if (ip.family === 4) {
    if (inRange(ip, '0.0.0.0/8')) return 'in 0.0.0.0/8 ("this network")';
    if (inRange(ip, '127.0.0.0/8')) return 'loopback';
    if (inRange(ip, '169.254.0.0/16') && !allowLinkLocal) return 'link-local';
    if (inRange(ip, '224.0.0.0/4')) return 'multicast';
    if (inRange(ip, '240.0.0.0/4')) return 'reserved or broadcast';
    return null;
  }
  if (ip.value === 0n) return 'unspecified';
  if (ip.value === 1n) return 'loopback';
  if (inRange(ip, '::/96') || inRange(ip, '::ffff:0:0/96')) return 'IPv4-compatible or IPv4-mapped';
  if (inRange(ip, 'ff00::/8')) return 'multicast';
  if (inRange(ip, 'fe80::/10') && !allowLinkLocal) return 'link-local';
  return null;
}
