/**
 * The YAML event policy (config `events:`), shared by the daemon and the one-shot worker.
 *
 *   apply      the normal handling (add: crawl + render + bring up; remove: tear down + re-render)
 *   ignore     recorded as ignored, nothing else
 *   reconcile  routing reconcile only, from cached metadata (metadataComplete: false: nothing is
 *              deleted for a present NIC on the strength of it)
 *   {run: argv} the command runs (argv, no shell, as root, 60 s timeout) with the event in its
 *              environment: HOTPLUG_EVENT, HOTPLUG_ACTION, HOTPLUG_IFACE, HOTPLUG_MAC, HOTPLUG_DEVPATH, HOTPLUG_STATE
 */
import { execa } from 'execa';
import type { Config, EventPolicy } from '../config.js';
import type { HotplugEvent } from '../events/event.js';
import { SAFE_PATH } from '../paths.js';
import { oneLine } from '../util/errors.js';

export type PolicyKind = 'add' | 'remove' | 'metadata_change' | 'link_down';

export const describePolicy = (p: EventPolicy): string => (typeof p === 'string' ? p : `run ${p.run[0]}`);

export interface RunResult {
  ok: boolean;
  detail: string;
}

/** Runs a {run: argv} policy; never throws. */
export async function runPolicyCommand(argv: readonly string[], vars: Record<string, string | undefined>, timeoutMs = 60_000): Promise<RunResult> {
  const env: Record<string, string> = { PATH: SAFE_PATH, LANG: 'C.UTF-8' };
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) env[k] = v;
  try {
    const r = await execa(argv[0]!, argv.slice(1), { env, extendEnv: false, reject: false, timeout: timeoutMs, stdin: 'ignore', all: true });
    if (r.exitCode === 0) return { ok: true, detail: `${argv[0]} exited 0` };
    const out = String(r.all ?? '').trim().split('\n').pop() ?? '';
    return { ok: false, detail: `${argv[0]} ${r.timedOut ? `timed out after ${timeoutMs} ms` : `exited ${r.exitCode ?? r.signal}`}${out ? `: ${out.slice(0, 200)}` : ''}` };
  } catch (e) {
    return { ok: false, detail: `${argv[0]}: ${oneLine(e)}` };
  }
}

export function eventVars(ev: HotplugEvent): Record<string, string | undefined> {
  return { HOTPLUG_EVENT: ev.action, HOTPLUG_ACTION: ev.action, HOTPLUG_IFACE: ev.ifname, HOTPLUG_MAC: ev.mac, HOTPLUG_DEVPATH: ev.devpath };
}

/** Events whose policy is 'apply' (handled by the pipeline) and the others. */
export function splitByPolicy(events: readonly HotplugEvent[], cfg: Pick<Config, 'events'>): { apply: HotplugEvent[]; other: { ev: HotplugEvent; policy: EventPolicy }[] } {
  const apply: HotplugEvent[] = [];
  const other: { ev: HotplugEvent; policy: EventPolicy }[] = [];
  for (const ev of events) {
    const policy = cfg.events[ev.action];
    if (policy === 'apply') apply.push(ev);
    else other.push({ ev, policy });
  }
  return { apply, other };
}
