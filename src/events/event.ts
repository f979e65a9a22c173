/**
 * The hotplug event as queued by the udev hook and consumed by the worker.
 * This module is on the udev hook's hot path: keep its imports to node builtins and tiny helpers.
 */
import { randomBytes } from 'node:crypto';
import { UserError } from '../util/errors.js';
import { addressOf } from '../util/sysfs.js';
import { bootMs, epochOfBoot } from '../util/boot-clock.js';

export type HotplugAction = 'add' | 'remove';

export interface HotplugEvent {
  /** Opaque, filename-safe; unique per event. */
  id: string;
  action: HotplugAction;
  ifname: string;
  /** Lower-case aa:bb:cc:dd:ee:ff. Often absent on remove (sysfs is already gone). */
  mac?: string;
  /** Kernel devpath, e.g. /devices/pci0000:00/0000:00:05.0/net/eth1. */
  devpath: string;
  /** udev SEQNUM: the kernel's own event order (resets on boot; the queue is on /run). */
  seqnum?: number;
  /** Arrival time, ms since the epoch (the udev program queues it as uptime_ms, on the boot clock). */
  time: number;
  driver?: string;
}

// Linux allows almost any byte in a name (dev_valid_name); we accept a conservative subset so a
// name can never smuggle a path, option or shell word into anything downstream.
// No leading "-": the name is a positional argument of ifup, ifdown and dhclient (option injection).
export const IFNAME_RE = /^[A-Za-z0-9_.:@][A-Za-z0-9_.:@-]{0,14}$/;
export const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const DEVPATH_RE = /^\/devices\/[A-Za-z0-9_./:@+-]*$/;
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const DRIVER_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Keeps the zero-padded 13-digit time in queue file names valid (year 2286). */
const MAX_TIME = 9_999_999_999_999;

/** Printable preview of hostile input for error messages (never echo control chars). */
function show(v: unknown): string {
  const s = typeof v === 'string' ? v : String(v);
  return JSON.stringify(s.length > 40 ? s.slice(0, 40) + '…' : s);
}

export function validateIfname(name: unknown): string {
  if (typeof name !== 'string' || !IFNAME_RE.test(name) || name === '.' || name === '..') {
    throw new UserError(`invalid interface name ${show(name)}: want 1-15 of [A-Za-z0-9_.:@-], not starting with "-", not "." or ".."`);
  }
  return name;
}

/** Returns the normalized (lower-case) MAC. */
export function validateMac(mac: unknown): string {
  const m = typeof mac === 'string' ? mac.toLowerCase() : '';
  if (!MAC_RE.test(m)) throw new UserError(`invalid MAC address ${show(mac)}: want six hex octets like 02:00:00:00:00:01`);
  return m;
}

export function validateDevpath(p: unknown): string {
  if (typeof p !== 'string' || p.length > 4096 || !DEVPATH_RE.test(p) || p.split('/').some((s) => s === '..')) {
    throw new UserError(`invalid devpath ${show(p)}: want /devices/... of [A-Za-z0-9_./:@+-], no ".." segment, at most 4096 chars`);
  }
  return p;
}

export function newEventId(): string {
  return randomBytes(8).toString('hex');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks untrusted input (a queue file, a CLI argument) and returns a clean copy with only the
 * known fields. Throws a one-line UserError naming the bad field.
 */
export function validateEvent(raw: unknown): HotplugEvent {
  if (!isRecord(raw)) throw new UserError('invalid event: not an object');
  const { id, action, ifname, mac, devpath, seqnum, time, uptime_ms, driver } = raw;
  if (typeof id !== 'string' || !ID_RE.test(id)) throw new UserError(`invalid event id ${show(id)}: want 1-64 of [A-Za-z0-9_-]`);
  if (action !== 'add' && action !== 'remove') throw new UserError(`invalid event action ${show(action)}: want add or remove`);
  const ev: HotplugEvent = {
    id,
    action,
    ifname: validateIfname(ifname),
    devpath: validateDevpath(devpath),
    time: 0,
  };
  if (time === undefined && uptime_ms !== undefined) {
    // The udev program's clock (util/boot-clock.ts): not later than now (a clock from elsewhere).
    const boot = bootMs();
    if (typeof uptime_ms !== 'number' || !Number.isSafeInteger(uptime_ms) || uptime_ms < 0 || uptime_ms > boot + 1000) {
      throw new UserError(`invalid event uptime_ms ${show(uptime_ms)}: want milliseconds since this boot`);
    }
    ev.time = epochOfBoot(uptime_ms, Date.now(), boot);
  } else {
    if (typeof time !== 'number' || !Number.isSafeInteger(time) || time < 0 || time > MAX_TIME) {
      throw new UserError(`invalid event time ${show(time)}: want milliseconds since the epoch`);
    }
    ev.time = time;
  }
  if (mac !== undefined && mac !== null) ev.mac = validateMac(mac);
  if (seqnum !== undefined && seqnum !== null) {
    if (typeof seqnum !== 'number' || !Number.isSafeInteger(seqnum) || seqnum < 0) {
      throw new UserError(`invalid event seqnum ${show(seqnum)}: want a non-negative integer`);
    }
    ev.seqnum = seqnum;
  }
  if (driver !== undefined && driver !== null && driver !== '') {
    if (typeof driver !== 'string' || !DRIVER_RE.test(driver)) {
      throw new UserError(`invalid driver name ${show(driver)}: want 1-64 of [A-Za-z0-9_.:-]`);
    }
    ev.driver = driver;
  }
  return ev;
}

/** udev's ID_NET_NAME_MAC ("enx0200000000a1") carries the MAC even on remove, from its database. */
function macFromNetNameMac(v: string | undefined): string | undefined {
  const m = v && /^enx([0-9a-fA-F]{12})$/.exec(v);
  return m ? m[1]!.toLowerCase().match(/../g)!.join(':') : undefined;
}

/** Ethernet-style address from sysfs, or undefined (already gone/renamed, or not 6 octets e.g. InfiniBand). */
function macFromSysfs(root: string, ifname: string): string | undefined {
  const a = addressOf(ifname, root);
  return a && MAC_RE.test(a) ? a : undefined;
}

export interface FromEnvOptions {
  /** Filesystem root for the sysfs read; defaults to HOTPLUG_ROOT or "/". */
  root?: string;
  now?: number;
}

/**
 * Builds and validates an event from the environment udev gives a RUN program.
 * MAC: HOTPLUG_MAC (a rule can set it from $attr{address}), else ID_NET_NAME_MAC, else for `add`
 * only, /sys/class/net/<if>/address (on remove the sysfs node is gone, so we never look).
 */
export function eventFromUdevEnv(env: NodeJS.ProcessEnv, opts: FromEnvOptions = {}): HotplugEvent {
  const action = env.ACTION;
  if (action !== 'add' && action !== 'remove') throw new UserError(`unsupported udev ACTION ${show(action ?? '')}: want add or remove`);
  if (!env.INTERFACE) throw new UserError('udev environment has no INTERFACE');
  if (!env.DEVPATH) throw new UserError('udev environment has no DEVPATH');
  // Validate the name before it becomes part of a sysfs path.
  const ifname = validateIfname(env.INTERFACE);
  let seqnum: number | undefined;
  if (env.SEQNUM !== undefined && env.SEQNUM !== '') {
    if (!/^\d{1,16}$/.test(env.SEQNUM)) throw new UserError(`invalid udev SEQNUM ${show(env.SEQNUM)}`);
    seqnum = Number(env.SEQNUM);
  }
  let mac: string | undefined = env.HOTPLUG_MAC || macFromNetNameMac(env.ID_NET_NAME_MAC);
  if (mac === undefined && action === 'add') mac = macFromSysfs(opts.root ?? process.env.HOTPLUG_ROOT ?? '/', ifname);
  return validateEvent({
    id: newEventId(),
    action,
    ifname,
    mac,
    devpath: env.DEVPATH,
    seqnum,
    time: opts.now ?? Date.now(),
    driver: env.ID_NET_DRIVER || undefined,
  });
}
