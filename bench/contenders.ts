/**
 * The contenders: what is installed into a freshly booted lab instance, and how the bench
 * learns that an event was handled. Adding one = one entry in CONTENDERS.
 */
import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lab from '../scripts/lab/index.js';
import { PATH_ENV, type LabCtx } from './lib/labctx.js';
import { DAEMON_NICE, DAEMON_NODE_FLAGS } from '../src/daemon/supervise.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist/src/cli.js');

export interface Handled {
  action: string;
  iface: string;
  /** epoch ms when the handler finished with this event */
  doneMs: number;
  ok: boolean;
  detail: string;
}

export interface Contender {
  id: string;
  label: string;
  /** Ours (cloud-hotplug) or the baseline. */
  ours: boolean;
  /** null when it can run here, otherwise why not. */
  unavailable(): string | null;
  /** Install into a freshly booted lab; may start long-lived processes (in the instance). */
  setup(ctx: LabCtx): Promise<void>;
  /** Events handled since `sinceMs` (epoch), oldest first. */
  handled(ctx: LabCtx, sinceMs: number): Promise<Handled[]>;
  /** Notices metadata changes that come without a device event (secondary IPs). */
  poller: boolean;
  /** Can be told by hand to re-read metadata (argv inside the instance). */
  trigger?: string[];
  /** Policy routing expected for secondary NICs (table 10000+device-number, from-rules). */
  routes: boolean;
  /** Hook lines with duration_ms in /var/log/cloud-hotplug.log. */
  hookLog: boolean;
}

// --------------------------------------------------------------------------------- upstream

/** cloud-init 22.4.2's rule, exactly as cc_install_hotplug.py writes it (HOTPLUG_UDEV_RULES_TEMPLATE). */
export const UPSTREAM_RULE_PATH = '/etc/udev/rules.d/10-cloud-init-hook-hotplug.rules';
export const UPSTREAM_RULE = `# Installed by cloud-init due to network hotplug userdata
ACTION!="add|remove", GOTO="cloudinit_end"
LABEL="cloudinit_hook"
SUBSYSTEM=="net", RUN+="/usr/lib/cloud-init/hook-hotplug"
LABEL="cloudinit_end"
`;
const FIFO = '/run/cloud-init/share/hook-hotplug-cmd';
const HOTPLUGD_LOG = '/run/b-bench/hotplugd.log';

/**
 * Debian's 22.4.2 /usr/lib/cloud-init/hook-hotplug does not run the handler itself: once
 * /run/cloud-init/result.json exists it writes "--subsystem=net handle --devpath=… --udevaction=…"
 * to the FIFO of cloud-init-hotplugd.socket, and systemd starts cloud-init-hotplugd.service,
 * which reads one line and execs `cloud-init devel hotplug-hook $args` (one at a time; the
 * next line waits in the FIFO). The lab has no systemd, so this script stands in for the
 * socket + service pair, nothing more: same FIFO (0600), same one-line-per-run read, same
 * command, serial. It logs start/end (epoch ms) of each run for the bench.
 */
export const HOTPLUGD_STANDIN = `#!/bin/bash
# bench stand-in for systemd's cloud-init-hotplugd.socket + cloud-init-hotplugd.service (22.4.2)
exec 3<>${FIFO}
while :; do
  read args <&3 || { sleep 0.05; continue; }
  echo "start $(date +%s%3N) $args" >>${HOTPLUGD_LOG}
  /usr/bin/cloud-init devel hotplug-hook $args >>/run/b-bench/hotplugd.out 2>&1
  rc=$?
  echo "end $(date +%s%3N) rc=$rc" >>${HOTPLUGD_LOG}
done
`;

/** Start a long-lived process inside the instance, detached from us (lab down kills it). */
async function spawnInInstance(ctx: LabCtx, argv: string[], logHost: string): Promise<number> {
  const full = await lab.instanceCommand(argv, { name: ctx.name, cwd: ROOT });
  const fd = openSync(logHost, 'a');
  const child = spawn(full[0]!, full.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: PATH_ENV });
  closeSync(fd);
  child.unref();
  if (!child.pid) throw new Error(`could not start ${argv.join(' ')}`);
  ctx.sweep([child.pid]);
  return child.pid;
}

const upstream: Contender = {
  id: 'upstream',
  label: 'upstream cloud-init 22.4.2 hook',
  ours: false,
  poller: false,
  routes: false,
  hookLog: false,
  unavailable: () => (existsSync('/usr/lib/cloud-init/hook-hotplug') ? null : '/usr/lib/cloud-init/hook-hotplug missing'),
  async setup(ctx) {
    await ctx.sh(['mkdir', '-p', '/run/cloud-init/share', '/run/b-bench']);
    await ctx.sh(['mkfifo', '-m', '0600', FIFO]);
    await ctx.write('/run/b-bench/hotplugd.sh', HOTPLUGD_STANDIN, 0o755);
    await spawnInInstance(ctx, ['/bin/bash', '/run/b-bench/hotplugd.sh'], `/run/cloud-hotplug-lab/${ctx.name}/b-hotplugd.out`);
    await ctx.write(UPSTREAM_RULE_PATH, UPSTREAM_RULE);
    await ctx.sh(['udevadm', 'control', '--reload-rules']);
  },
  async handled(ctx, sinceMs) {
    const text = (await ctx.read(HOTPLUGD_LOG)) ?? '';
    const out: Handled[] = [];
    let cur: { action: string; iface: string; start: number } | null = null;
    for (const line of text.split('\n')) {
      let m = /^start (\d+) (.*)$/.exec(line);
      if (m) {
        const args = m[2]!;
        cur = {
          start: Number(m[1]),
          action: /--udevaction=(\S+)/.exec(args)?.[1] ?? '?',
          iface: (/--devpath=(\S+)/.exec(args)?.[1] ?? '?').split('/').pop()!,
        };
        continue;
      }
      m = /^end (\d+) rc=(\d+)$/.exec(line);
      if (m && cur) {
        if (cur.start >= sinceMs) out.push({ action: cur.action, iface: cur.iface, doneMs: Number(m[1]), ok: m[2] === '0', detail: `rc=${m[2]}` });
        cur = null;
      }
    }
    return out;
  },
};

// --------------------------------------------------------------------------------- ours

async function ourHandled(ctx: LabCtx, sinceMs: number): Promise<Handled[]> {
  const t = await ctx.read('/run/cloud-hotplug/recent-events.json');
  let recs: { action: string; iface: string; result: string; reason?: string; time: string }[] = [];
  try {
    recs = t ? JSON.parse(t) : [];
  } catch {
    recs = [];
  }
  return recs
    .map((r) => ({ action: r.action, iface: r.iface, doneMs: Date.parse(r.time), ok: r.result === 'configured' || r.result === 'removed', detail: r.result + (r.reason ? `: ${r.reason}` : '') }))
    .filter((h) => h.doneMs >= sinceMs);
}

/** `hotplug install` as a user runs it (the daemon is its default; the one-shot contender opts out). */
async function hotplugInstall(ctx: LabCtx, extra: string[] = []): Promise<void> {
  const r = await ctx.exec([process.execPath, CLI, 'install', ...extra]);
  if (r.exitCode !== 0) throw new Error(`hotplug install: ${r.stderr.trim()}`);
}

const oneshot: Contender = {
  id: 'oneshot',
  label: 'cloud-hotplug one-shot (install --no-daemon: udev hook + worker)',
  ours: true,
  poller: false,
  routes: true,
  hookLog: true,
  trigger: [process.execPath, CLI, 'apply'],
  unavailable: () => (existsSync(CLI) ? null : `${CLI} missing (npm run build)`),
  setup: (ctx) => hotplugInstall(ctx, ['--no-daemon']),
  handled: ourHandled,
};

function readText(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

const DAEMON_JS = join(ROOT, 'dist/src/commands/daemon.js');
const DAEMON_SOCK = '/run/cloud-hotplug/daemon.sock';

const daemon: Contender = {
  id: 'daemon',
  label: 'cloud-hotplug daemon (the default after install)',
  ours: true,
  poller: true,
  routes: true,
  hookLog: true,
  unavailable: () => (existsSync(DAEMON_JS) ? null : 'not available: dist/src/commands/daemon.js missing (hotplug daemon not built yet)'),
  async setup(ctx) {
    await hotplugInstall(ctx);
    const out = `/run/cloud-hotplug-lab/${ctx.name}/b-daemon.out`;
    // With the node flags and the nice value of its systemd unit and of --supervise: the default path, as installed.
    const pid = await spawnInInstance(ctx, ['nice', '-n', String(DAEMON_NICE), process.execPath, ...DAEMON_NODE_FLAGS, CLI, 'daemon'], out);
    const end = Date.now() + 30_000;
    // ready = it printed "hotplug daemon ready" (after its bridge is warm and its socket listens)
    while (!/hotplug daemon ready/.test(readText(out)) || !ctx.exists(DAEMON_SOCK)) {
      if (!existsSync(`/proc/${pid}`)) throw new Error(`hotplug daemon exited at start: ${readText(out).trim().split('\n').slice(-2).join(' | ')}`);
      if (Date.now() > end) throw new Error(`hotplug daemon: not ready after 30 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    ctx.sweep();
  },
  handled: ourHandled,
};

/** In the order they run within a round (rotated every run). */
export const CONTENDERS: Contender[] = [upstream, oneshot, daemon];
