#!/usr/bin/env node
/**
 * The program udev runs for every net add/remove (see `hotplug install`). It must return
 * fast and never wait on metadata: validate, queue durably, then hand over: kick the daemon
 * (`hotplug daemon`) through its socket when one runs, else start a worker if none holds the
 * lock, exit. Imports only node builtins and tiny modules (events, daemon/kick).
 *
 * Ordering argument (no lost events): we enqueue BEFORE kicking or looking at the lock. The
 * daemon answers a kick only after noting it, and drains until the queue is empty; a worker
 * (or the daemon) releases its lock BEFORE its last look at the queue. So either the holder
 * sees our event, or we see the lock free and start a worker.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, lstatSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventFromUdevEnv } from './events/event.js';
import { enqueueSync } from './events/queue.js';
import { kick } from './daemon/kick.js';
import { paths, SAFE_PATH } from './paths.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), 'cli.js');

process.env.PATH = SAFE_PATH;

function lockFree(file: string = paths.lockFile): boolean {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  // flock -n succeeds (0) only when nobody holds the lock; it drops it again at once.
  const r = spawnSync('flock', ['-n', '-E', '75', file, 'true'], { stdio: 'ignore' });
  return r.status === 0;
}

function startWorker(): string {
  if (existsSync('/run/systemd/system')) {
    // udev kills what its RUN programs leave behind under systemd; a transient unit is ours.
    const r = spawnSync(
      'systemd-run',
      ['--no-block', '--quiet', '--collect', '--unit=cloud-hotplug-worker', '--description=cloud-hotplug event worker', process.execPath, CLI, 'worker'],
      { stdio: 'ignore' },
    );
    return r.status === 0 ? 'systemd-run' : 'systemd-run-busy';
  }
  mkdirSync(dirname(paths.logFile), { recursive: true });
  const out = openSync(paths.logFile, 'a', 0o640);
  const child = spawn(process.execPath, [CLI, 'worker'], { detached: true, stdio: ['ignore', out, out], env: { ...process.env, PATH: SAFE_PATH } });
  child.unref();
  return `pid ${child.pid}`;
}

/**
 * For holders of the apply lock that are not workers (`hotplug apply`, `refresh-metadata`): a hook
 * that found the lock taken queued its event and started no worker, so after releasing they look
 * at the queue and start one. Returns what the hook would log.
 */
export function ensureWorker(): string {
  if (!lockFree(join(paths.runDir, 'daemon.lock'))) return 'daemon';
  return lockFree() ? startWorker() : 'running';
}

export async function runHook(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const t0 = performance.now();
  let line: string;
  let rc = 0;
  try {
    const ev = eventFromUdevEnv(env);
    // A planted symlink must not make flock create (or lock) some other file (bin/hotplug-udev-hook too).
    for (const f of [paths.lockFile, join(paths.runDir, 'daemon.lock')]) {
      if (lstatSync(f, { throwIfNoEntry: false })?.isSymbolicLink()) throw new Error(`refusing ${f}: it is a symlink`);
    }
    enqueueSync(ev);
    // The daemon (holding daemon.lock, as bin/hotplug-udev-hook checks) also watches the queue.
    const daemon = (await kick(500, { id: ev.id })) || !lockFree(join(paths.runDir, 'daemon.lock'));
    const worker = daemon ? 'daemon' : lockFree() ? startWorker() : 'running';
    // performance.now() counts from process start: this is the whole udev program's time.
    line = `hotplug[${process.pid}] info: hook queued action=${ev.action} iface=${ev.ifname} mac=${ev.mac ?? '-'} worker=${JSON.stringify(worker)} duration_ms=${performance.now().toFixed(1)} own_ms=${(performance.now() - t0).toFixed(1)}`;
  } catch (e) {
    rc = 1;
    line = `hotplug[${process.pid}] error: hook rejected event: ${(e as Error).message.split('\n')[0]} duration_ms=${(performance.now() - t0).toFixed(1)}`;
  }
  process.stderr.write(line + '\n');
  try {
    appendFileSync(paths.logFile, line + '\n', { mode: 0o640 });
  } catch {
    /* logging must never fail the hook */
  }
  return rc;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void runHook().then((rc) => process.exit(rc));
