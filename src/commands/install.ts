/** `hotplug install` / `uninstall`: the udev rule, the systemd units and drop-ins, and exactly their removal. */
import { Option, type Command } from 'commander';
import { existsSync, lstatSync, statSync } from 'node:fs';
import { rename, rm, rmdir, symlink, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { action } from './common.js';
import { requireRoot } from '../core/session.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { UserError, oneLine } from '../util/errors.js';
import { describeChange } from '../routing/change.js';
import { flushOwned } from '../routing/cleanup.js';
import { acquireLock } from '../lock.js';
import { systemdRunning, usesSystemd } from '../init/index.js';
import {
  CLOUD_INIT_RULES,
  CLOUD_INIT_SOCKET,
  MANIFEST,
  REPLAY_UNIT,
  DAEMON_UNIT,
  NETWORKD_DROPIN,
  NETWORKD_DROPIN_TEXT,
  NM_DROPIN,
  NM_DROPIN_TEXT,
  DAEMON_SERVICE,
  daemonUnitText,
  RULE_PATH,
  replayUnitText,
  ruleText,
  type Manifest,
} from '../install/files.js';

import { moveAsideUpstreamRules, readManifest, reloadUdev } from '../install/replace.js';

/** Is our / the init process's / (not a chroot)? Unknowable (no /proc) counts as no. */
function sameRootAsInit(): boolean {
  try {
    const a = statSync('/');
    const b = statSync('/proc/1/root');
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/** Write one file of ours (recorded in the manifest, with any directory we had to create). */
async function writeOwned(root: string, m: Manifest, rel: string, text: string): Promise<void> {
  const parts = dirname(rel).split('/');
  for (let i = 1; i <= parts.length; i++) {
    const d = parts.slice(0, i).join('/');
    if (existsSync(join(root, d))) continue;
    await mkdir(join(root, d), { mode: 0o755 });
    (m.dirs ??= []).includes(d) || m.dirs.push(d);
  }
  await writeFileAtomic(join(root, rel), text, 0o644);
  if (!m.files.includes(rel)) m.files.push(rel);
  process.stdout.write(`wrote /${rel}\n`);
}

/**
 * Our policy-routing rules and tables go with the project: nothing would keep them in step with
 * DHCP or metadata afterwards. Taken under the apply lock so no worker is mid-reconcile; a
 * failure is reported and the uninstall goes on (the files must still go).
 */
async function removeRouting(): Promise<void> {
  try {
    const lock = await acquireLock({ timeoutMs: 60_000 });
    try {
      const r = await flushOwned();
      for (const c of r.applied) process.stdout.write(`removed ${describeChange(c.change)}\n`);
      for (const f of r.failed) process.stderr.write(`could not remove: ${describeChange(f.change)}\n`);
    } finally {
      await lock.release();
    }
  } catch (e) {
    process.stderr.write(`policy routing left in place: ${oneLine(e)}\n`);
  }
}

export function register(program: Command): void {
  program
    .command('install')
    .description(
      `Wire this host: the udev rule (${RULE_PATH}) that queues net add/remove events, and on
systemd hosts a unit that replays events queued during boot and ${DAEMON_SERVICE}, enabled and
started: the warm daemon handles every event (a one-shot worker only where it does not run).
--no-daemon opts out (recorded: a later install keeps the choice). Refuses while cloud-init's own
hotplug hook is installed, unless --replace-cloud-init-hook (which moves its rule aside and
masks ${CLOUD_INIT_SOCKET}; uninstall restores both).`,
    )
    .option('--root <dir>', 'install into this root directory instead of /', '/')
    .option('--replace-cloud-init-hook', "disable cloud-init's own hotplug hook so events are not handled twice")
    // Described, not printed: the build machine's node path must not end up in the manual page.
    .addOption(new Option('--node <path>', 'node binary the rule runs').default(process.execPath, 'the node running this command'))
    .option('--daemon', `enable and start ${DAEMON_SERVICE} (the default, unless an earlier install had --no-daemon)`)
    .option('--no-daemon', `leave ${DAEMON_SERVICE} disabled and stopped: every event starts a one-shot worker`)
    .action(
      action(async (o: { root: string; replaceCloudInitHook?: boolean; node: string; daemon?: boolean }) => {
        requireRoot('install');
        const root = o.root;
        const m: Manifest = (await readManifest(root)) ?? { version: 1, installed_at: '', files: [], moved: [], masked: [] };
        // The daemon is the default; an explicit choice is recorded so that a re-run (a package
        // upgrade's postinst) keeps an opt-out.
        const daemon = o.daemon ?? m.daemon ?? true;
        m.daemon = daemon;
        const upstream = CLOUD_INIT_RULES.filter((r) => existsSync(join(root, r)));
        if (upstream.length && !o.replaceCloudInitHook) {
          throw new UserError(
            `cloud-init's own hotplug hook is installed (${upstream.map((r) => '/' + r).join(', ')}); both would handle every event. Rerun with --replace-cloud-init-hook to disable it`,
          );
        }
        if (o.replaceCloudInitHook) m.replace_cloud_init_hook = true;
        for (const line of await moveAsideUpstreamRules(root, m)) process.stdout.write(line + '\n');
        await writeOwned(root, m, RULE_PATH, ruleText(o.node));
        // Units are written for a root that boots with systemd; systemctl runs only where it is running now.
        const running = root === '/' && systemdRunning('/');
        if (usesSystemd(root)) {
          await writeOwned(root, m, REPLAY_UNIT, replayUnitText(o.node));
          await writeOwned(root, m, DAEMON_UNIT, daemonUnitText(o.node));
          if (existsSync(join(root, 'lib/systemd/systemd-networkd'))) await writeOwned(root, m, NETWORKD_DROPIN, NETWORKD_DROPIN_TEXT);
          if (o.replaceCloudInitHook) {
            const mask = `etc/systemd/system/${CLOUD_INIT_SOCKET}`;
            if (!existsSync(join(root, mask))) {
              await mkdir(dirname(join(root, mask)), { recursive: true });
              await symlink('/dev/null', join(root, mask));
              m.masked.push(mask);
              process.stdout.write(`masked ${CLOUD_INIT_SOCKET}\n`);
            }
          }
          if (running) {
            await execa('systemctl', ['daemon-reload'], { reject: false });
            await execa('systemctl', ['enable', 'cloud-hotplug-replay.service'], { reject: false });
            if (daemon) {
              const r = await execa('systemctl', ['enable', '--now', DAEMON_SERVICE], { reject: false });
              process.stdout.write(r.exitCode === 0 ? `enabled and started ${DAEMON_SERVICE}\n` : `could not start ${DAEMON_SERVICE}: ${String(r.stderr).trim()}\n`);
            } else {
              await execa('systemctl', ['disable', '--now', DAEMON_SERVICE], { reject: false });
              process.stdout.write(`${DAEMON_SERVICE} disabled (--no-daemon): events are handled one-shot\n`);
            }
          }
        }
        if (existsSync(join(root, 'usr/sbin/NetworkManager'))) {
          await writeOwned(root, m, NM_DROPIN, NM_DROPIN_TEXT);
          // A running NM reads it now (nothing when it does not run: it reads it when it starts).
          if (root === '/') await execa('nmcli', ['general', 'reload', 'conf'], { reject: false, stdin: 'ignore', timeout: 10_000 });
        }
        if (daemon && root === '/' && !running) {
          process.stdout.write(
            usesSystemd(root)
              ? `systemd is not running here: ${DAEMON_SERVICE} starts at boot once enabled (the package's postinst enables it)\n`
              : 'no systemd here: start the daemon with "hotplug daemon --supervise" (it restarts the daemon if it dies)\n',
          );
        }
        m.installed_at = new Date().toISOString();
        await writeJsonAtomic(join(root, MANIFEST), m, 0o644);
        await reloadUdev(root);
      }),
    );

  program
    .command('uninstall')
    .description('Remove exactly what install wrote, and restore what it moved aside or masked.')
    .option('--root <dir>', 'root directory', '/')
    .option('--keep-routing', 'leave the policy routing rules and tables in place (nothing will maintain them)')
    .action(
      action(async (o: { root: string; keepRouting?: boolean }) => {
        requireRoot('uninstall');
        const root = o.root;
        const m = await readManifest(root);
        if (!m) throw new UserError(`nothing to uninstall: no ${'/' + MANIFEST}`);
        const running = root === '/' && systemdRunning('/');
        if (running && m.files.includes(REPLAY_UNIT)) {
          // --now: RemainAfterExit keeps it loaded and active otherwise (stopping runs nothing).
          await execa('systemctl', ['disable', '--now', 'cloud-hotplug-replay.service'], { reject: false });
        }
        if (running && m.files.includes(DAEMON_UNIT)) {
          await execa('systemctl', ['disable', '--now', DAEMON_SERVICE], { reject: false });
        }
        if (root === '/' && !o.keepRouting) {
          // A chroot (image build, dpkg in a build root) shares the build host's network.
          if (sameRootAsInit()) await removeRouting();
          else process.stdout.write('in a chroot: the network (the host\'s) and its policy routing are left alone\n');
        }
        for (const f of m.files) {
          await rm(join(root, f), { force: true });
          process.stdout.write(`removed /${f}\n`);
        }
        if (root === '/' && m.files.includes(NM_DROPIN)) await execa('nmcli', ['general', 'reload', 'conf'], { reject: false, stdin: 'ignore', timeout: 10_000 });
        for (const mask of m.masked) {
          const p = join(root, mask);
          if (existsSync(p) || (() => { try { return lstatSync(p).isSymbolicLink(); } catch { return false; } })()) await rm(p, { force: true });
          process.stdout.write(`unmasked ${mask.split('/').pop()}\n`);
        }
        for (const [orig, moved] of m.moved) {
          if (existsSync(join(root, moved)) && !existsSync(join(root, orig))) {
            await rename(join(root, moved), join(root, orig));
            process.stdout.write(`restored /${orig}\n`);
          }
        }
        // Deepest first: a directory goes only if we created it and it is empty now.
        for (const d of [...(m.dirs ?? [])].sort((a, b) => b.length - a.length)) {
          await rmdir(join(root, d)).catch(() => {});
        }
        await rm(join(root, MANIFEST), { force: true });
        if (running) await execa('systemctl', ['daemon-reload'], { reject: false });
        await reloadUdev(root);
      }),
    );
}
