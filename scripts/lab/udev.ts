/**
 * udev inside the instance: systemd-udevd in the foreground (its PID recorded), a passive
 * `udevadm monitor` logging kernel and udev net events to the lab dir, a parser for that log, and
 * waiting for an event in it.
 */
import { readFile, readdir, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { labPaths, type LabPaths } from './paths.js';
import { spawnDaemon, isAlive, type ProcRef } from './proc.js';
import { nsenterArgv, instanceRoot, instanceRun, INSTANCE_ENV } from './instance.js';
import { sleep, waitFor } from './run.js';
import type { LabOptions } from './running.js';

export const UDEVD = '/lib/systemd/systemd-udevd';

const SYSTEM_RULES_DIRS = ['/usr/lib/udev/rules.d', '/lib/udev/rules.d', '/usr/local/lib/udev/rules.d'];
export const NET_ONLY_LABEL = 'cloud_hotplug_lab_not_net';

/**
 * The kernel broadcasts every uevent that is not tied to a netns (block, mem, modules, ...)
 * into all network namespaces, so the instance's udevd also sees the host's devices. To keep
 * it from acting on them (loading modules, running dmsetup, writing /sys attributes), each
 * system rules file is shadowed in the instance's /run/udev/rules.d by a copy that skips
 * every device that is not a NIC. Net devices get exactly the original rules.
 * Files named in `masked` (already overridden in the instance's /etc) are left alone.
 */
export async function installNetOnlyRules(holderPid: number, masked: string[]): Promise<number> {
  const seen = new Set<string>(masked);
  const dest = join(instanceRoot(holderPid), 'run/udev/rules.d');
  await mkdir(dest, { recursive: true, mode: 0o755 });
  let n = 0;
  for (const dir of SYSTEM_RULES_DIRS) {
    let names: string[] = [];
    try {
      names = (await readdir(dir)).filter((f) => f.endsWith('.rules')).sort();
    } catch {
      continue;
    }
    for (const f of names) {
      if (seen.has(f)) continue;
      seen.add(f);
      const orig = await readFile(join(dir, f), 'utf8').catch(() => null);
      if (orig === null) continue;
      const body =
        `# cloud-hotplug lab: ${dir}/${f} for NICs only (host devices' uevents reach this netns too)\n` +
        `SUBSYSTEM!="net", GOTO="${NET_ONLY_LABEL}"\n` +
        orig +
        (orig.endsWith('\n') ? '' : '\n') +
        `LABEL="${NET_ONLY_LABEL}"\n`;
      await writeFile(join(dest, f), body, { mode: 0o644 });
      n++;
    }
  }
  return n;
}

export async function startUdevd(p: LabPaths, holderPid: number, onSpawn: (r: ProcRef) => Promise<void>): Promise<ProcRef> {
  const ref = spawnDaemon(nsenterArgv(holderPid, [UDEVD]), 'systemd-udevd', {
    log: p.udevdLog,
    env: { ...INSTANCE_ENV, SYSTEMD_LOG_TARGET: 'console', SYSTEMD_LOG_LEVEL: 'debug', SYSTEMD_LOG_TIME: '1' },
  });
  await onSpawn(ref);
  const ctl = `${instanceRoot(holderPid)}/run/udev/control`;
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    if (!isAlive(ref)) break;
    if (existsSync(ctl)) return ref;
    await sleep(20);
  }
  const log = await readFile(p.udevdLog, 'utf8').catch(() => '');
  throw new Error(`systemd-udevd did not start: ${log.trim().split('\n').slice(-3).join(' | ')}`);
}

export async function startMonitor(p: LabPaths, holderPid: number): Promise<ProcRef> {
  const ref = spawnDaemon(
    nsenterArgv(holderPid, ['stdbuf', '-oL', 'udevadm', 'monitor', '--kernel', '--udev', '--property', '--subsystem-match=net']),
    'udevadm monitor',
    { log: p.udevMonitorLog, env: INSTANCE_ENV },
  );
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    const s = await readFile(p.udevMonitorLog, 'utf8').catch(() => '');
    if (s.includes('UDEV - the event which udev sends out')) return ref;
    if (!isAlive(ref)) break;
    await sleep(20);
  }
  if (!isAlive(ref)) throw new Error('udevadm monitor did not start');
  return ref;
}

/** Coldplug the instance's NICs (what systemd-udev-trigger does at boot), then settle. */
export async function coldplug(holderPid: number): Promise<void> {
  await instanceRun(holderPid, ['udevadm', 'trigger', '--action=add', '--subsystem-match=net'], { env: INSTANCE_ENV, cleanEnv: true });
  await settle(holderPid);
}

export async function settle(holderPid: number, timeoutS = 30): Promise<void> {
  await instanceRun(holderPid, ['udevadm', 'settle', `--timeout=${timeoutS}`], { env: INSTANCE_ENV, cleanEnv: true, check: false });
}

export interface UdevEvent {
  /** 'kernel' = the uevent as the kernel sent it; 'udev' = after udevd processed its rules. */
  source: 'kernel' | 'udev';
  action: string;
  devpath: string;
  subsystem: string;
  ifname?: string;
  seqnum?: number;
  /** Monotonic seconds as printed by udevadm monitor. */
  monotonic: number;
  props: Record<string, string>;
}

export function parseMonitorLog(text: string): UdevEvent[] {
  const out: UdevEvent[] = [];
  const re = /^(KERNEL|UDEV)\s*\[([\d.]+)\]\s+(\S+)\s+(\S+)\s+\(([^)]*)\)\s*$/;
  let cur: UdevEvent | null = null;
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (m) {
      cur = {
        source: m[1] === 'KERNEL' ? 'kernel' : 'udev',
        monotonic: Number(m[2]),
        action: m[3]!,
        devpath: m[4]!,
        subsystem: m[5]!,
        props: {},
      };
      out.push(cur);
      continue;
    }
    if (!line.trim()) {
      cur = null;
      continue;
    }
    if (cur) {
      const i = line.indexOf('=');
      if (i > 0) {
        const k = line.slice(0, i);
        const v = line.slice(i + 1);
        cur.props[k] = v;
        if (k === 'INTERFACE') cur.ifname = v;
        if (k === 'SEQNUM') cur.seqnum = Number(v);
      }
    }
  }
  return out;
}

export async function readUdevEvents(p: LabPaths): Promise<UdevEvent[]> {
  const s = await readFile(p.udevMonitorLog, 'utf8').catch(() => '');
  return parseMonitorLog(s);
}

export async function udevEvents(opts: LabOptions = {}): Promise<UdevEvent[]> {
  return readUdevEvents(labPaths(opts.name));
}

/** Now on the clock udevadm monitor stamps events with (CLOCK_MONOTONIC, seconds). */
export function monotonicNow(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

/**
 * Wait until udevd (source 'udev', i.e. after its rules ran) or the kernel (source 'kernel')
 * reported `action` for `ifname`, at or after `since` (monotonicNow() taken before the action;
 * default: any time). Returns the first such event, or null on timeout.
 */
export async function waitForUdevEvent(
  ifname: string,
  action: string,
  opts: LabOptions & { source?: 'udev' | 'kernel'; timeoutMs?: number; since?: number } = {},
): Promise<UdevEvent | null> {
  const p = labPaths(opts.name);
  const src = opts.source ?? 'udev';
  const since = opts.since ?? 0;
  return waitFor(
    async () =>
      (await readUdevEvents(p)).find(
        (e) => e.source === src && e.action === action && e.ifname === ifname && e.subsystem === 'net' && e.monotonic >= since,
      ) ?? null,
    opts.timeoutMs ?? 10_000,
    50,
  );
}
