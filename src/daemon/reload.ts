/**
 * SIGHUP: the config re-read (config.yaml and cloud-config's cloud_hotplug key, merged as at start);
 * an invalid one is logged and the old one kept. What changed is applied in place: the socket
 * moved, the poller re-armed, the FIFO/TCP listeners and URL sources restarted.
 */
import { readConfigDoc, type Config } from '../config.js';
import { effectiveConfig } from '../config-cloud.js';
import { describePolicy } from '../pipeline/policies.js';
import { paths } from '../paths.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';
import type { Daemon } from './daemon.js';

const now = () => new Date().toISOString();

export async function reloadConfig(d: Daemon): Promise<boolean> {
  let next: Config;
  try {
    const file = d.opts.configPath ?? paths.configFile;
    const doc = await readConfigDoc(file);
    const eff = effectiveConfig(doc, await d.readCloudPart(), file);
    next = eff.config;
    d.effective = eff;
  } catch (e) {
    const error = oneLine(e);
    d.reload = { time: now(), ok: false, error };
    log('error', 'config reload failed; keeping the old config', { error });
    d.emit({ type: 'config', time: now(), result: 'rejected', reason: error });
    return false;
  }
  const old = d.cfg;
  d.cfg = next;
  d.reload = { time: now(), ok: true };
  log('info', 'config reloaded', {
    poll_interval_seconds: next.daemon.poll_interval_seconds,
    probe_interval_seconds: next.daemon.probe_interval_seconds,
    socket: next.daemon.socket,
    events: Object.entries(next.events).map(([k, v]) => `${k}=${describePolicy(v)}`).join(','),
  });
  d.emit({ type: 'config', time: now(), result: 'reloaded' });
  if (!d.opts.socket && next.daemon.socket !== old.daemon.socket) {
    try {
      await d.listeners.moveUnix(next.daemon.socket);
      d.socketPath = next.daemon.socket;
      await d.advertise();
    } catch (e) {
      log('error', 'could not move the socket; keeping the old one', { error: oneLine(e), socket: next.daemon.socket });
    }
  }
  const intervals = (c: typeof next) => `${c.daemon.poll_interval_seconds}/${c.daemon.probe_interval_seconds}`;
  if (intervals(next) !== intervals(old) && d.opts.poll !== false) d.poller.arm(false);
  await d.listeners.configure(next.daemon.listeners);
  if (JSON.stringify(next.daemon.url_sources) !== JSON.stringify(old.daemon.url_sources)) d.startUrlSources();
  return true;
}
