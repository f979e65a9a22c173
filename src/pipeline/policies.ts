/**
 * The event policy (config `events:`): one map from policy to handler, used for every kind of
 * event (device add/remove, metadata_change, link_down).
 *
 *   apply      the kind's normal handling (add: crawl + render + bring up; remove: tear down +
 *              re-render; metadata_change: render + bring up new NICs + routing; link: full apply)
 *   ignore     recorded as ignored, nothing else
 *   reconcile  policy routing reconcile only, from cached metadata (metadataComplete: false:
 *              nothing is deleted for a present NIC on the strength of it)
 *   {run: argv} the command runs (argv, no shell, as root, 60 s timeout) with the event in its
 *              environment: HOTPLUG_EVENT, HOTPLUG_ACTION, HOTPLUG_IFACE, HOTPLUG_MAC, HOTPLUG_DEVPATH,
 *              HOTPLUG_STATE, HOTPLUG_CHANGE
 */
import { execa } from 'execa';
import type { EventPolicy } from '../config.js';
import type { HotplugEvent } from '../events/event.js';
import { SAFE_PATH } from '../paths.js';
import { oneLine } from '../util/errors.js';

export type PolicyKind = 'add' | 'remove' | 'metadata_change' | 'link_down' | 'url_change';
export type PolicyName = 'apply' | 'ignore' | 'reconcile' | 'run';

export const describePolicy = (p: EventPolicy): string => (typeof p === 'string' ? p : `run ${p.run[0]}`);
export const policyName = (p: EventPolicy): PolicyName => (typeof p === 'string' ? p : 'run');

/** What a handler did: which one ran, whether it worked, and why (for the record). */
export interface PolicyOutcome {
  handler: PolicyName;
  ok: boolean;
  reason?: string;
  routingChanges?: number;
  /** The event joins the batch's coalesced apply (device events); it is recorded there. */
  deferred?: boolean;
}

/** One event (or a group handled together) as the handlers see it. */
export interface PolicyJob {
  kind: PolicyKind;
  /** Environment for a {run} command. */
  vars: Record<string, string | undefined>;
  /** The kind's normal handling. */
  apply(): Promise<Omit<PolicyOutcome, 'handler'>>;
  /** Routing only, from cached metadata. */
  reconcile(): Promise<Omit<PolicyOutcome, 'handler'>>;
}

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

/** The environment of a device event for a {run} command. */
export function eventVars(ev: HotplugEvent): Record<string, string | undefined> {
  return { HOTPLUG_EVENT: ev.action, HOTPLUG_ACTION: ev.action, HOTPLUG_IFACE: ev.ifname, HOTPLUG_MAC: ev.mac, HOTPLUG_DEVPATH: ev.devpath };
}

type Handler = (policy: EventPolicy, job: PolicyJob) => Promise<PolicyOutcome>;

export const HANDLERS: Readonly<Record<PolicyName, Handler>> = {
  apply: async (_p, job) => ({ handler: 'apply', ...(await job.apply()) }),
  ignore: async (_p, job) => ({ handler: 'ignore', ok: true, reason: `events.${job.kind} policy is ignore` }),
  reconcile: async (_p, job) => ({ handler: 'reconcile', ...(await job.reconcile()) }),
  run: async (p, job) => {
    const r = await runPolicyCommand((p as { run: string[] }).run, job.vars);
    return { handler: 'run', ok: r.ok, reason: r.detail };
  },
};

/** Runs the handler the policy names. */
export function dispatch(policy: EventPolicy, job: PolicyJob): Promise<PolicyOutcome> {
  return HANDLERS[policyName(policy)](policy, job);
}
