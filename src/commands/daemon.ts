/** `hotplug daemon`: run the warm daemon in the foreground (or supervised). */
import type { Command } from 'commander';
import { action } from './common.js';
import { requireRoot } from '../core/session.js';
import { paths } from '../paths.js';

export function register(program: Command): void {
  program
    .command('daemon')
    .description(
      `Run the hotplug daemon in the foreground: a warm Python bridge, a unix socket (JSON lines;
config daemon.socket, mode 0600) that the udev hook kicks and the CLI asks, a kernel link watch
(ip monitor) and a metadata poller (one small request every daemon.probe_interval_seconds; a full
re-read only on a change) that applies changes no device event announces; optionally a FIFO and a TCP listener and URL event sources (daemon.listeners,
daemon.url_sources). apply and refresh-metadata run as its jobs while it runs. Its config is
cloud-config's cloud_hotplug key with ${paths.configFile} over it, key by key.
SIGHUP reloads both; SIGTERM finishes the current job and exits.
Under systemd, cloud-hotplug-daemon.service (written by install) runs it; elsewhere use
--supervise to restart it when it dies.`,
    )
    .option('--supervise', 'run the daemon as a child process and restart it whenever it dies (hosts without systemd)')
    .option('--config <file>', 'configuration file', paths.configFile)
    .option('--socket <path>', 'listen here instead of the configured daemon.socket')
    .option('--no-monitor', 'do not watch kernel link events (ip monitor)')
    .option('--no-poll', 'do not poll metadata for changes')
    .action(
      action(async (o: { supervise?: boolean; config: string; socket?: string; monitor: boolean; poll: boolean }) => {
        requireRoot('daemon');
        if (o.supervise) {
          const { supervise, DAEMON_NODE_FLAGS } = await import('../daemon/supervise.js');
          // The same command without --supervise, with the daemon's memory flags.
          const args = process.argv.slice(2).filter((a) => a !== '--supervise');
          const flags = [...new Set([...DAEMON_NODE_FLAGS, ...process.execArgv])];
          return supervise([process.execPath, ...flags, process.argv[1]!, ...args]);
        }
        (await import('../util/idle-gc.js')).gcWhenIdle();
        const { runDaemon } = await import('../daemon/run.js');
        return runDaemon({ configPath: o.config, socket: o.socket, monitor: o.monitor, poll: o.poll });
      }),
    );
}
