/** `hotplug status`: boot state, instance, queue, last apply and recent events, without starting Python when it can. */
import type { Command } from 'commander';
import { action, printJson } from './common.js';
import { bootState } from '../core/boot.js';
import { readLastApply } from '../record/last-apply.js';
import { readInstanceRecord, type StatusSummary } from '../record/instance.js';
import { oneLine } from '../util/errors.js';
import { readAdvert, request } from '../daemon/kick.js';
import { pendingCount } from '../events/queue.js';
import { recentEvents } from '../record/events.js';
import { stackKind, type StackReport } from '../stack/index.js';
import { readFileSync } from 'node:fs';
import { paths } from '../paths.js';

/** Renderer and activator cloud-init reports, and the NetworkStack they select (the daemon's own when it runs). */
interface NetworkView {
  renderer: string | null;
  activator: string | null;
  stack: string | null;
}

/** The stack report the last session recorded (instance.json), whatever its age: renderer and activator change only with cloud.cfg or packages. */
function recordedStack(): StackReport | null {
  try {
    return (JSON.parse(readFileSync(paths.instanceRecordJson, 'utf8')) as { stack?: StackReport | null }).stack ?? null;
  } catch {
    return null;
  }
}

function networkView(report: StackReport | null, daemon: Record<string, any>): NetworkView {
  const fromDaemon = daemon.running && typeof daemon.network_stack === 'string' ? (daemon.network_stack as string) : null;
  return { renderer: report?.renderer ?? null, activator: report?.activator ?? null, stack: fromDaemon ?? (report ? stackKind(report) : null) };
}

/** The running daemon's status (it answers from memory), or why there is none. */
async function daemonStatus(): Promise<Record<string, any>> {
  const ad = readAdvert();
  if (!ad) return { running: false };
  const r = await request(ad.socket, { op: 'status' }, 5000);
  if (r?.ok === true && r.status && typeof r.status === 'object') return r.status as Record<string, any>;
  return { running: false, reason: `no answer on ${ad.socket} (advertised by pid ${ad.pid})` };
}

/** Where the instance part of status (datasource, instance id, hotplug, MACs) came from. */
interface Source {
  /** daemon: its memory; record: what the last session wrote (core/instance-record.ts); live: a bridge session now. */
  from: 'daemon' | 'record' | 'live';
  /** When that was read from cloud-init (ISO), and how long ago. */
  time: string | null;
  age_s: number | null;
  /** For a record: the command that wrote it. */
  by?: string;
  /** For live: why not from a record (--live, nothing recorded, record stale: …). */
  reason?: string;
}

const ageOf = (time: string | null | undefined): number | null => {
  const t = time ? Date.parse(time) : NaN;
  return Number.isFinite(t) ? Math.max(0, Math.round((Date.now() - t) / 100) / 10) : null;
};

/**
 * The instance summary without starting Python when someone already knows it: the daemon, else
 * the record of the last session (if cloud-init's inputs are unchanged since), else (or with
 * --live) a bridge session, which records what it read for the next time.
 */
async function instanceSummary(daemon: Record<string, any>, live: boolean): Promise<{ summary: StatusSummary | null; error: string | null; source: Source; stack?: StackReport | null }> {
  let reason = '--live';
  if (!live) {
    if (daemon.running && daemon.summary) {
      const time = typeof daemon.summary.time === 'string' ? daemon.summary.time : null;
      return { summary: daemon.summary as StatusSummary, error: null, source: { from: 'daemon', time, age_s: ageOf(time) } };
    }
    const rec = readInstanceRecord();
    if (rec.ok) return { summary: rec.record.summary, error: null, source: { from: 'record', time: rec.record.time, age_s: ageOf(rec.record.time), by: rec.record.by } };
    reason = rec.why;
  }
  const time = new Date().toISOString();
  const source: Source = { from: 'live', time, age_s: 0, reason };
  try {
    const { withSession } = await import('../core/session.js');
    const r = await withSession(async (s) => ({ summary: s.summary, stack: s.stack ?? null }));
    return { summary: r.summary, error: null, source, stack: r.stack };
  } catch (e) {
    return { summary: null, error: oneLine(e), source };
  }
}

/** The daemon's sources, listeners and non-default settings, for the text output. */
function daemonLines(d: Record<string, any>): string[] {
  const out: string[] = [];
  const src = (d.sources ?? []) as { name: string; state: string; detail?: string }[];
  if (src.length) {
    const w = Math.max(...src.map((s) => s.name.length));
    out.push('sources:', ...src.map((s) => `  ${s.name.padEnd(w)}  ${s.state.padEnd(10)} ${s.detail ?? ''}`.trimEnd()));
  }
  const cc = d.config?.cloud_config;
  if (cc) out.push(`cloud-config: ${cc.state}${cc.error ? ` (${cc.error})` : ''}`);
  const set = (d.config?.settings ?? []) as { key: string; value: unknown; from: string }[];
  if (set.length) {
    const w = Math.max(...set.map((s) => s.key.length));
    out.push('settings (others default):', ...set.map((s) => `  ${s.key.padEnd(w)} = ${JSON.stringify(s.value)} (${s.from})`));
  }
  return out;
}

export function register(program: Command): void {
  program
    .command('status')
    .description(
      "Show cloud-init boot state, datasource, instance id, whether hotplug is enabled, the last apply, the queue and the daemon (asked over its socket when it runs). The instance part comes from the daemon, else from what the last worker/apply/refresh read (while cloud-init's cache and config are unchanged), else from cloud-init's cache through the Python bridge; `source` says which, and how old.",
    )
    .option('--json', 'machine-readable output')
    .option('--live', "read cloud-init's cache now through the Python bridge (default: what the daemon or the last worker/apply/refresh recorded, if still current)")
    .action(
      action(async (opts: { json?: boolean; live?: boolean }) => {
        const boot = await bootState();
        const daemon = await daemonStatus();
        const { summary, error: cacheError, source, stack } = await instanceSummary(daemon, opts.live === true);
        const network = networkView(stack ?? recordedStack(), daemon);
        const last = await readLastApply();
        const st = {
          cloud_init: boot,
          datasource: summary?.datasource ?? null,
          instance_id: summary?.instance_id ?? null,
          hotplug: summary ? summary.hotplug : { enabled: null, reason: cacheError },
          interfaces_in_metadata: summary?.macs ?? [],
          network,
          // Where network metadata comes from; static: a config drive, which never lists a NIC attached after boot.
          metadata: { source: summary?.metadata_source ?? null, static: summary?.metadata_static ?? false },
          source,
          last_apply: last,
          queue: { pending: await pendingCount().catch(() => null) },
          recent_events: (await recentEvents()).slice(-10),
          daemon,
        };
        if (opts.json) return printJson(st);
        const lines = [
          `cloud-init:   ${boot.status}${boot.errors.length ? ` (${boot.errors.length} error(s))` : ''}`,
          `datasource:   ${st.datasource ?? '-'}`,
          `instance id:  ${st.instance_id ?? '-'}`,
          `hotplug:      ${summary ? (summary.hotplug.enabled ? 'enabled' : 'disabled') : 'unknown'} (${st.hotplug.reason})`,
          `metadata:     ${st.interfaces_in_metadata.length} interface(s)${st.metadata.source ? ` from ${st.metadata.source}` : ''}${
            st.metadata.static ? '; static (a config drive is written once at boot: NICs attached later are not in it)' : ''
          }`,
          `network:      renderer ${network.renderer ?? '-'}, activator ${network.activator ?? '-'}, stack ${network.stack ?? '-'}`,
          `source:       ${source.from}${source.by ? ` (by ${source.by})` : ''}${source.age_s !== null ? `, ${source.age_s} s old` : ''}${source.reason ? ` (${source.reason})` : ''}`,
          `last apply:   ${last ? `${last.time} ${last.result} in ${last.duration_ms} ms${last.error ? `: ${last.error}` : ''}` : 'never'}`,
          `queue:        ${st.queue.pending ?? '-'} event(s) pending`,
          `daemon:       ${
            daemon.running
              ? `running, pid ${daemon.pid}, ${daemon.state}; bridge pid ${daemon.bridge?.pid ?? '-'} ${daemon.bridge?.alive ? 'alive' : 'down'} (${daemon.bridge?.restarts ?? 0} restart(s)); RSS ${daemon.memory?.node_rss_mb} MB node + ${daemon.memory?.python_rss_mb ?? '-'} MB python`
              : `not running${daemon.reason ? ` (${daemon.reason})` : ''}`
          }`,
        ];
        if (daemon.running) lines.push(...daemonLines(daemon));
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );
}
