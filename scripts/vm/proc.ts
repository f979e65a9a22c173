/** Host commands (argv arrays, never shell strings), detached daemons, and processes by PID + start time. */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { execa } from 'execa';

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly result: RunResult,
  ) {
    const tail = (result.stderr || result.stdout).trim().split('\n').slice(-4).join(' | ');
    super(`command failed (exit ${result.exitCode}): ${argv.join(' ')}${tail ? `: ${tail}` : ''}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  check?: boolean;
  /** Let the command write straight to our stderr (long builds). */
  inheritStderr?: boolean;
  cwd?: string;
  env?: Record<string, string>;
}

export async function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  const r = await execa(file!, args, {
    reject: false,
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
    stderr: opts.inheritStderr ? 'inherit' : 'pipe',
    timeout: opts.timeoutMs,
    cwd: opts.cwd,
    env: opts.env,
    stripFinalNewline: false,
  });
  const result: RunResult = {
    exitCode: typeof r.exitCode === 'number' ? r.exitCode : r.timedOut ? 124 : 125,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? '') + (r.timedOut ? `\n(timed out after ${opts.timeoutMs} ms)` : '') + (r.failed && r.exitCode === undefined && !r.timedOut ? `\n${r.shortMessage}` : ''),
  };
  if ((opts.check ?? true) && result.exitCode !== 0) throw new CommandError(argv, result);
  return result;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `fn` until truthy or `timeoutMs` passes (then the last value). */
export async function waitFor<T>(fn: () => Promise<T> | T, timeoutMs: number, intervalMs = 200): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v || Date.now() >= end) return v;
    await sleep(intervalMs);
  }
}

export async function which(cmd: string): Promise<string | null> {
  const r = await run(['sh', '-c', 'command -v "$1"', 'sh', cmd], { check: false });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}

export interface ProcRef {
  pid: number;
  /** /proc/<pid>/stat field 22: tells a reused PID apart. */
  startTime: number;
  what: string;
}

function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

export function refOf(pid: number, what: string): ProcRef {
  const f = statFields(pid);
  if (!f) throw new Error(`process ${pid} (${what}) is gone`);
  return { pid, startTime: Number(f[19]), what };
}

export function isAlive(ref: ProcRef | undefined | null): boolean {
  if (!ref || !Number.isInteger(ref.pid) || ref.pid <= 1) return false;
  const f = statFields(ref.pid);
  if (!f || f[0] === 'Z' || f[0] === 'X') return false;
  return Number(f[19]) === ref.startTime;
}

/** Start a long-running process detached from us, stdout+stderr appended to `log`. */
export function spawnDaemon(argv: string[], log: string, what: string): ProcRef {
  const fd = openSync(log, 'a', 0o644);
  try {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
    child.unref();
    if (!child.pid) throw new Error(`could not start ${what}: ${argv[0]}`);
    return refOf(child.pid, what);
  } finally {
    closeSync(fd);
  }
}

/** SIGTERM (then SIGKILL after `graceMs`) one process we started, identified by PID + start time. */
export async function killRef(ref: ProcRef | undefined | null, graceMs = 3000): Promise<boolean> {
  if (!isAlive(ref)) return false;
  try {
    process.kill(ref!.pid, 'SIGTERM');
  } catch {
    return false;
  }
  if (await waitFor(() => !isAlive(ref), graceMs, 50)) return true;
  try {
    process.kill(ref!.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  return waitFor(() => !isAlive(ref), 2000, 50);
}
