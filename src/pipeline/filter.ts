/**
 * Which interfaces cloud-hotplug manages (pure). Container, bridge and tunnel interfaces come and go
 * all the time and must never trigger a metadata refresh or be configured from cloud metadata.
 *
 * Rules, in order:
 *   1. loopback ("lo") is never a candidate;
 *   2. a name matching deny_names is rejected unless it also matches allow_names (allow_names is
 *      an exception list, not a whitelist);
 *   3. a driver matching deny_drivers is rejected; a non-empty allow_drivers is a whitelist.
 * Driver rules need a driver: an add without one fails a non-empty allow_drivers; a remove without
 * one (udev may not report it) skips the driver rules so a configured NIC is still torn down.
 * Names are denied by pattern, never by driver 'veth' by default: lab instance NICs are veths named ethN.
 */
export interface FilterConfig {
  allow_drivers: string[];
  deny_drivers: string[];
  allow_names: string[];
  deny_names: string[];
}

export type FilterResult = { ok: true } | { ok: false; reason: string };

/** Shell-style glob: `*` any run of characters, `?` exactly one, everything else literal. */
export function globMatch(pattern: string, s: string): boolean {
  // Iterative matcher with single-star backtracking: linear-ish, no regex, no ReDoS.
  let p = 0;
  let i = 0;
  let starP = -1;
  let starI = 0;
  while (i < s.length) {
    if (p < pattern.length && pattern[p] === '*') {
      starP = p++;
      starI = i;
    } else if (p < pattern.length && (pattern[p] === '?' || pattern[p] === s[i])) {
      p++;
      i++;
    } else if (starP >= 0) {
      p = starP + 1;
      i = ++starI;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

const firstMatch = (patterns: readonly string[], s: string) => patterns.find((g) => globMatch(g, s));

export function isCandidate(
  ev: { ifname: string; driver?: string; action?: 'add' | 'remove' },
  f: FilterConfig,
): FilterResult {
  if (ev.ifname === 'lo') return { ok: false, reason: 'loopback' };
  const denied = firstMatch(f.deny_names, ev.ifname);
  if (denied !== undefined && firstMatch(f.allow_names, ev.ifname) === undefined) {
    return { ok: false, reason: `name ${ev.ifname} matches deny_names pattern ${JSON.stringify(denied)}` };
  }
  if (ev.driver === undefined) {
    if (f.allow_drivers.length > 0 && ev.action !== 'remove') {
      return { ok: false, reason: 'driver unknown and allow_drivers is set' };
    }
    return { ok: true };
  }
  const deniedDriver = firstMatch(f.deny_drivers, ev.driver);
  if (deniedDriver !== undefined) {
    return { ok: false, reason: `driver ${ev.driver} matches deny_drivers pattern ${JSON.stringify(deniedDriver)}` };
  }
  if (f.allow_drivers.length > 0 && firstMatch(f.allow_drivers, ev.driver) === undefined) {
    return { ok: false, reason: `driver ${ev.driver} not in allow_drivers` };
  }
  return { ok: true };
}
