/**
 * The kernel's boot clock as /proc/uptime shows it (CLOCK_BOOTTIME, hundredths of a second): the
 * udev program times its events with it because sh reads it without a fork (`date` was a third of
 * the program's cost, more under a NIC storm). Queue file names from sh and from node are on this
 * one clock, and an event's epoch time is derived from it when the queue is read.
 */
import { readFileSync } from 'node:fs';

/** Milliseconds since boot, at /proc/uptime's resolution (10 ms). */
export function bootMs(): number {
  const m = /^(\d+)\.(\d\d)\s/.exec(readFileSync('/proc/uptime', 'utf8'));
  if (!m) throw new Error('cannot read the boot clock: /proc/uptime has no "<seconds>.<hundredths>"');
  return Number(m[1]) * 1000 + Number(m[2]) * 10;
}

let offset: number | undefined;

/**
 * Epoch ms minus boot-clock ms, read once and kept (so conversions are monotonic: two fresh reads
 * differ by up to /proc/uptime's 10 ms), read again only when the wall clock was stepped since.
 */
export function bootOffset(now = Date.now(), boot = bootMs()): number {
  const fresh = now - boot;
  if (offset === undefined || Math.abs(fresh - offset) > 1000) offset = fresh;
  return offset;
}

/** The epoch time (ms) of boot-clock time `ms`. */
export const epochOfBoot = (ms: number, now = Date.now(), boot = bootMs()): number => ms + bootOffset(now, boot);

/** The boot-clock time (ms) of epoch time `ms` (0 for a time before boot). */
export const bootOfEpoch = (ms: number, now = Date.now(), boot = bootMs()): number => Math.max(0, ms - bootOffset(now, boot));
