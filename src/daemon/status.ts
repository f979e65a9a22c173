/** The daemon's answer to `status` (from memory: no Python call): its jobs, sources, bridge and memory. */
import { pendingCount } from '../events/queue.js';
import { paths } from '../paths.js';
import { rssOf } from '../../bridge/manager.js';
import { describePolicy } from '../pipeline/policies.js';
import type { Daemon } from './daemon.js';

const mb = (b: number | null | undefined) => (b == null ? null : Math.round((b / 1048576) * 10) / 10);

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
    socket: { path: d.socketPath, connections: d.server?.connections ?? 0, requests: d.server?.requests ?? 0, errors: d.server?.errors ?? 0 },
    config: {
      file: d.opts.configPath ?? paths.configFile,
      poll_interval_seconds: d.cfg.daemon.poll_interval_seconds,
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
            interval_seconds: d.cfg.daemon.poll_interval_seconds,
            polls: poll.polls,
            last_poll: poll.last,
            last_poll_ms: poll.lastMs,
            last_change: poll.lastChange,
            errors: poll.errors,
            last_error: poll.lastError,
            next_in_ms: poll.nextAt === null ? null : Math.max(0, poll.nextAt - Date.now()),
            fingerprint: d.poller.baseline ?? null,
          },
    memory: { node_rss_mb: mb(nodeRss), node_heap_used_mb: mb(process.memoryUsage().heapUsed), python_rss_mb: mb(pyRss), total_rss_mb: mb(nodeRss + (pyRss ?? 0)) },
    stats: { ...d.stats, ...d.kernel.stats },
    summary: s ? { datasource: s.datasource, instance_id: s.instance_id, hotplug: s.hotplug, macs: s.macs, metadata_source: s.metadata_source, metadata_static: s.metadata_static, time: typeof sAt === 'number' ? new Date(sAt).toISOString() : null } : null,
  };
}
