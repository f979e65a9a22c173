/**
 * Event handling (the daemon, a one-shot worker, and what they start: Python, ifup, the DHCP
 * client) runs at a lower CPU priority than the udev program: when 16 NICs arrive at once on 2
 * cores, the 16 short hooks must not queue behind a crawl and 16 bring-ups, or udev's workers stay
 * blocked. The total work is the same; only who goes first changes. Children inherit the nice value.
 */
import { getPriority, setPriority } from 'node:os';

/** The nice value of event handling (0 is udev's). */
export const HANDLER_NICE = 5;

/** Lower this process's priority to HANDLER_NICE (never raises it; failure is harmless). */
export function lowerPriority(): void {
  try {
    if (process.getuid?.() === 0 && getPriority() < HANDLER_NICE) setPriority(HANDLER_NICE);
  } catch {
    /* an unprivileged or restricted process keeps its priority */
  }
}
