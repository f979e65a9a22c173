/**
 * The small supervisor for hosts without systemd (`hotplug daemon --supervise`): it only spawns
 * and waits, so it imports nothing heavy (its own RSS stays small).
 */
import { backoffDelay } from '../util/backoff.js';
import { spawn } from 'node:child_process';
import { getPriority, setPriority } from 'node:os';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';

/** Exit status when another daemon already listens: the supervisor does not retry it. */
export const EXIT_ALREADY_RUNNING = 3;

/**
 * Node flags for the long-running daemon: no JIT (its JS is glue around I/O; the JIT's code and
 * compiler pages cost ~6 MB RSS), a 1 MB young generation (~3 MB), and gc() for the full
 * collection once it goes quiet after a batch (util/idle-gc.ts); no V8 worker threads
 * (--single-threaded: a small heap collects fast on the main thread) and V8's lite mode (lazy
 * feedback vectors), together a few MB of RSS less. The unit file uses the same.
 */
export const DAEMON_NODE_FLAGS = ['--jitless', '--lite-mode', '--single-threaded', '--no-expose-wasm', '--max-semi-space-size=1', '--expose-gc'];

/**
 * The daemon's nice value (unit: Nice=; --supervise: inherited from the supervisor). In a storm
 * udev's programs (milliseconds each, one per NIC) and the daemon's batch compete for the CPU; the
 * batch waits for those events anyway, so they should run first. Only weighs under contention.
 */
export const DAEMON_NICE = 5;

/**
 * Re-runs `argv` (the daemon in the foreground) whenever it dies other than by a clean exit:
 * kill -9 of the daemon is followed by a new one within about half a second (backing off to 30 s
 * when it keeps dying at once). SIGTERM/SIGINT/SIGHUP are passed on; SIGTERM ends both.
 */
export async function supervise(argv: string[], opts: { signals?: boolean; restartMs?: number } = {}): Promise<number> {
  let child: ReturnType<typeof spawn> | undefined;
  let stopping = false;
  let restarts = 0;
  let quickDeaths = 0;
  for (const sig of opts.signals === false ? [] : (['SIGTERM', 'SIGINT', 'SIGHUP'] as const)) {
    process.on(sig, () => {
      if (sig !== 'SIGHUP') stopping = true;
      child?.kill(sig);
    });
  }
  const base = opts.restartMs ?? 500;
  // Set before the first spawn on the thread that spawns: the daemon and all its threads and
  // children (Python, DHCP clients) inherit it. Never raises priority (a nicer caller stays so).
  try {
    if (getPriority() < DAEMON_NICE) setPriority(DAEMON_NICE);
  } catch {
    // not permitted in some sandboxes: the daemon runs at the caller's priority
  }
  for (;;) {
    const started = Date.now();
    child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env: process.env });
    log('info', 'supervisor: daemon started', { pid: child.pid, restarts });
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child!.once('error', (e) => {
        log('error', 'supervisor: cannot start the daemon', { error: oneLine(e) });
        resolve({ code: 1, signal: null });
      });
      child!.once('exit', (c, s) => resolve({ code: c, signal: s }));
    });
    if (stopping) return code ?? 0;
    if (code === 0) {
      log('info', 'supervisor: daemon exited cleanly; not restarting');
      return 0;
    }
    if (code === EXIT_ALREADY_RUNNING) return code;
    quickDeaths = Date.now() - started < 10_000 ? quickDeaths + 1 : 0;
    // The first restart comes at once (a kill -9 should cost half a second); deaths in a row back off.
    const delay = quickDeaths > 1 ? Math.round(Math.max(base, backoffDelay(quickDeaths - 1, { initialMs: base * 2, maxMs: 30_000 }))) : base;
    restarts++;
    log('warn', 'supervisor: daemon died; restarting it', { pid: child.pid, why: signal ?? `exit ${code}`, in_ms: delay, restarts });
    await new Promise((r) => setTimeout(r, delay));
    if (stopping) return 0;
  }
}
