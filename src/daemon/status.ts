/**
 * The daemon's answer to `status` (from memory: no Python call): its jobs, every event source and
 * listener with its state, where each setting came from, the bridge and memory.
 */
import { pendingCount } from '../events/queue.js';
import { paths } from '../paths.js';
import { rssOf } from '../../bridge/manager.js';
import { describePolicy } from '../pipeline/policies.js';
import type { Daemon } from './daemon.js';
import type { JobRecord } from './job-store.js';
import { ROUTING_PROTO } from '../routing/state.js';
import { maxProbesPerMinute } from './probe.js';

const mb = (b: number | null | undefined) => (b == null ? null : Math.round((b / 1048576) * 10) / 10);

const brief = (j: JobRecord) => ({ id: j.id, kind: j.kind, state: j.state, duration_ms: j.duration_ms, ...(j.error ? { error: j.error } : {}) });

function pollerDetail(d: Daemon, poll: Daemon['poller']['stats']): string {
  const p = d.poller.probe;
  const tail = `${poll.refreshes} full re-read(s), ${poll.errors} error(s) in a row`;
  if (!d.poller.probing()) return `full re-read every ${d.cfg.daemon.poll_interval_seconds} s${p.supported === false ? ' (the datasource has no probe)' : ''}, ${tail}`;
  return `probe every ${d.cfg.daemon.probe_interval_seconds} s (one request; ${p.requests.lastMinute()} in the last minute), ${p.probes} probe(s), ${p.changed} change(s) seen, ${tail}`;
}

/** Every event source with its state: what `hotplug status` lists. */
function sources(d: Daemon, poll: Daemon['poller']['stats']): Record<string, unknown>[] {
  const m = d.monitor;
  const watch = m ? (m.running ? 'running' : 'restarting') : 'disabled';
  const out: Record<string, unknown>[] = [
    { name: 'udev queue', state: d.queueWatching ? 'watching' : 'stopped', detail: 'inotify on the queue directory, a sweep every 15 s' },
    { name: 'kernel link watch', state: watch, detail: m ? `ip monitor pid ${m.pid ?? '-'}, ${m.restarts} restart(s), ${m.links.size} link(s)` : 'not started (--no-monitor)' },
    { name: 'routing watch', state: watch, detail: m ? `addresses, our rules (proto ${ROUTING_PROTO}) and RA default routers from the same ip monitor` : 'not started (--no-monitor)' },
    {
      name: 'metadata poller',
      state: d.opts.poll === false ? 'disabled' : poll.errors ? 'backoff' : 'armed',
      detail: d.opts.poll === false ? 'not started (--no-poll)' : pollerDetail(d, poll),
    },
  ];
  for (const u of d.urlSources) {
    const st = u.stats;
    out.push({ name: `url ${u.cfg.url}`, state: st.state, detail: `every ${u.cfg.interval_seconds} s, ${st.polls} poll(s), ${st.changes} change(s), ${st.not_modified} not modified, ${st.errors} error(s)`, last_error: st.last_error, etag: st.etag, next_in_ms: st.next_at === null ? null : Math.max(0, st.next_at - Date.now()) });
  }
  for (const l of d.listeners.info()) out.push({ name: `listener ${l.kind}`, state: l.state, detail: l.address ?? (l.state === 'disabled' ? 'not enabled in daemon.listeners' : ''), ...(l.error ? { last_error: l.error } : {}) });
  return out;
}

/** Every setting that is not a default, with its value and where it came from. */
function settings(d: Daemon): { key: string; value: unknown; from: string }[] {
  const get = (k: string) => k.split('.').reduce<unknown>((o, p) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[p] : undefined), d.cfg);
  return Object.entries(d.effective?.origins ?? {})
    .filter(([, from]) => from !== 'default')
    .map(([key, from]) => ({ key, value: get(key), from }));
}

export async function daemonStatus(d: Daemon): Promise<Record<string, unknown>> {
  const nodeRss = process.memoryUsage().rss;
  const pyRss = rssOf(d.bridges.pid);
  const s = d.poller.summary ?? d.bridges.summary;
  const sAt = d.poller.summary ? d.poller.summaryAt : d.bridges.summaryAt;
  const poll = d.poller.stats;
  return {
    running: true,
    pid: process.pid,
    state: d.state,
    current_job: d.jobs.current,
    jobs_waiting: d.jobs.waiting,
    started: new Date(d.startedAt).toISOString(),
    uptime_s: Math.round((Date.now() - d.startedAt) / 1000),
    ready: d.readyAt !== null,
    socket: { path: d.socketPath, connections: d.listeners.unix?.connections ?? 0, requests: d.listeners.unix?.stats.requests ?? 0, errors: d.listeners.unix?.stats.errors ?? 0 },
    sources: sources(d, poll),
    listeners: d.listeners.info(),
    jobs: { unfinished: d.jobStore.unfinished, recent: d.jobStore.list(5).map(brief) },
    config: {
      file: d.opts.configPath ?? paths.configFile,
      cloud_config: d.effective?.cloud ?? { state: 'not read' },
      origins: d.effective?.origins ?? null,
      settings: settings(d),
      poll_interval_seconds: d.cfg.daemon.poll_interval_seconds,
      probe_interval_seconds: d.cfg.daemon.probe_interval_seconds,
      events: Object.fromEntries(Object.entries(d.cfg.events).map(([k, v]) => [k, describePolicy(v)])),
      last_reload: d.reload,
    },
    network_stack: d.deps.stack.name,
    init_system: d.deps.init.name,
    queue: { pending: await pendingCount().catch(() => null) },
    last_events: d.ring.slice(-20),
    bridge: d.bridges.health(),
    monitor: d.monitor ? { pid: d.monitor.pid ?? null, running: d.monitor.running, restarts: d.monitor.restarts, links: d.monitor.links.size, last_error: d.monitor.lastError ?? null } : null,
    poller:
      d.opts.poll === false
        ? null
        : {
            interval_seconds: d.poller.probing() ? d.cfg.daemon.probe_interval_seconds : d.cfg.daemon.poll_interval_seconds,
            polls: poll.polls,
            last_poll: poll.last,
            last_poll_ms: poll.lastMs,
            last_change: poll.lastChange,
            errors: poll.errors,
            last_error: poll.lastError,
            next_in_ms: poll.nextAt === null ? null : Math.max(0, poll.nextAt - Date.now()),
            fingerprint: d.poller.baseline ?? null,
            full_rereads: poll.refreshes,
            failed_changes: poll.failedChanges,
            probe: {
              enabled: d.poller.probing(),
              supported: d.poller.probe.supported,
              interval_seconds: d.cfg.daemon.probe_interval_seconds,
              max_per_minute: maxProbesPerMinute(d.cfg.daemon.probe_interval_seconds),
              probes: d.poller.probe.probes,
              requests: d.poller.probe.requests.total,
              requests_last_minute: d.poller.probe.requests.lastMinute(),
              changes: d.poller.probe.changed,
              not_modified: d.poller.probe.notModified,
              last_change: d.poller.probe.lastChanged,
              last_resource: d.poller.probe.lastResource,
              resources: d.poller.probe.targets,
            },
          },
    memory: { node_rss_mb: mb(nodeRss), node_heap_used_mb: mb(process.memoryUsage().heapUsed), python_rss_mb: mb(pyRss), total_rss_mb: mb(nodeRss + (pyRss ?? 0)) },
    stats: { ...d.stats, ...d.kernel.stats },
    summary: s ? { datasource: s.datasource, instance_id: s.instance_id, hotplug: s.hotplug, macs: s.macs, metadata_source: s.metadata_source, metadata_static: s.metadata_static, time: typeof sAt === 'number' ? new Date(sAt).toISOString() : null } : null,
  };
}
