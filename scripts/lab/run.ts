/** Running host commands (argv arrays only, never shell strings built from data). */
import { execa } from 'execa';

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  /** Throw on a non-zero exit (default true). */
  check?: boolean;
  /** Start from an empty environment plus `env` (default: inherit this process's). */
  cleanEnv?: boolean;
  /** Let the command write straight to our stderr (long builds). */
  inheritStderr?: boolean;
  cwd?: string;
}

export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly result: RunResult,
  ) {
    const err = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ');
    super(`command failed (exit ${result.exitCode}): ${argv.join(' ')}${err ? `: ${err}` : ''}`);
    this.name = 'CommandError';
  }
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
    extendEnv: !opts.cleanEnv,
    stripFinalNewline: false,
  });
  const result: RunResult = {
    exitCode: typeof r.exitCode === 'number' ? r.exitCode : r.timedOut ? 124 : 125,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? '') + (r.timedOut ? `\n(timed out after ${opts.timeoutMs} ms)` : '') +
      (r.failed && r.exitCode === undefined && !r.timedOut ? `\n${r.shortMessage}` : ''),
  };
  if ((opts.check ?? true) && result.exitCode !== 0) throw new CommandError(argv, result);
  return result;
}

/** `ip` in a named netns; with `batch` lines, one `ip -batch -` process runs them all. */
export async function ipNs(ns: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(['ip', '-n', ns, ...args], opts);
}

export async function ipBatch(ns: string | null, lines: string[], opts: RunOptions = {}): Promise<RunResult> {
  const pre = ns ? ['ip', '-n', ns] : ['ip'];
  return run([...pre, '-batch', '-'], { ...opts, input: lines.join('\n') + '\n' });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value or `timeoutMs` passes (then returns the last value). */
export async function waitFor<T>(fn: () => Promise<T> | T, timeoutMs: number, intervalMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v || Date.now() >= end) return v;
    await sleep(intervalMs);
  }
}

/** The path of `cmd` on PATH, or null. */
export async function which(cmd: string): Promise<string | null> {
  const r = await run(['sh', '-c', 'command -v "$1"', 'sh', cmd], { check: false });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}
