/**
 * The daemon in the foreground: what systemd's ExecStart (Type=notify) or the supervisor runs.
 */
import { readConfigDoc } from '../config.js';
import { effectiveConfig, type CloudPart } from '../config-cloud.js';
import { Bridges } from '../core/bridges.js';
import { paths } from '../paths.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';
import { Daemon, type DaemonOptions } from './daemon.js';

import { EXIT_ALREADY_RUNNING } from './supervise.js';

export async function runDaemon(opts: DaemonOptions = {}): Promise<number> {
  const t0 = performance.now();
  const file = opts.configPath ?? paths.configFile;
  // The file first: an invalid one fails before Python starts.
  const doc = await readConfigDoc(file);
  effectiveConfig(doc, { present: false, config: null, type: 'absent' }, file);
  // Then cloud-config's cloud_hotplug key through the bridge (warm from here on). Without a cache
  // yet (early boot) it counts as absent until a reload (SIGHUP).
  const bridges = opts.bridges ?? new Bridges();
  const cloud: CloudPart = await bridges.withBridge('cloud-config', (b) => b.cloudConfig(), { attempts: 1 }).catch((e) => ({ error: oneLine(e) }));
  if ('error' in cloud) log('warn', 'cloud-config not read; using the config file alone', { error: cloud.error });
  const effective = effectiveConfig(doc, cloud, file);
  const cfg = effective.config;
  const d = new Daemon(cfg, { ...opts, bridges, effective });
  let stopped!: () => void;
  const done = new Promise<void>((r) => (stopped = r));
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log('info', `${sig}: stopping after the current job`);
    void d.stop().then(stopped, (e) => {
      log('error', 'stop failed', { error: oneLine(e) });
      stopped();
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    log('info', 'SIGHUP: reloading the config');
    void d.reloadConfig();
  });
  try {
    await d.start();
  } catch (e) {
    await bridges.stop().catch(() => {});
    await d.stop().catch(() => {});
    if (/another daemon already (listens|runs)/.test(oneLine(e))) {
      process.stderr.write(`hotplug: ${oneLine(e)}\n`);
      return EXIT_ALREADY_RUNNING;
    }
    throw e;
  }
  const st = await d.status();
  const mem = st.memory as { node_rss_mb: number; python_rss_mb: number | null; total_rss_mb: number };
  log('info', 'daemon ready', {
    socket: (st.socket as { path: string }).path,
    bridge_pid: d.bridges.pid,
    startup_ms: Math.round(performance.now() - t0),
    node_rss_mb: mem.node_rss_mb,
    python_rss_mb: mem.python_rss_mb,
  });
  process.stdout.write(`hotplug daemon ready: pid ${process.pid}, socket ${(st.socket as { path: string }).path}\n`);
  await d.deps.init.notifyReady(cfg.daemon.probe_interval_seconds > 0 ? `ready; metadata probe every ${cfg.daemon.probe_interval_seconds}s` : `ready; poll every ${cfg.daemon.poll_interval_seconds}s`);
  await done;
  return 0;
}
