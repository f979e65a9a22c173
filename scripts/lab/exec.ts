/** Running commands in the instance and reading or writing its files (nsenter through the holder). */
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { nsenterArgv, instanceRoot, readInstanceFile, writeInstanceFile } from './instance.js';
import { holderPid, type LabOptions } from './running.js';
import { UserError } from '../../src/util/errors.js';

export interface ExecOptions extends LabOptions {
  /** 'inherit' (default for the CLI) or 'pipe' (collect stdout/stderr). */
  stdio?: 'inherit' | 'pipe';
  input?: string;
  /** Extra environment (the caller's is inherited unless cleanEnv). */
  env?: Record<string, string>;
  cleanEnv?: boolean;
  cwd?: string;
  timeoutMs?: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const HIDDEN_INSIDE = ['/run', '/tmp', '/etc', '/var', '/sys', '/dev', '/proc'];
/** The checkout is carried into the instance even under /tmp or /run (see the holder script). */
const PROJECT = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');

function instanceCwd(cwd: string): string {
  if (cwd === PROJECT || cwd.startsWith(PROJECT + '/')) return cwd;
  return HIDDEN_INSIDE.some((d) => cwd === d || cwd.startsWith(d + '/')) ? '/' : cwd;
}

/** argv prefix-wrapped to run inside the instance (for callers that spawn processes themselves). */
export async function instanceCommand(argv: string[], opts: LabOptions & { cwd?: string } = {}): Promise<string[]> {
  return nsenterArgv(await holderPid(opts.name), argv, instanceCwd(opts.cwd ?? process.cwd()));
}

/** Run a command inside the instance; the exit code is passed through (never throws on it). */
export async function exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  if (!argv.length) throw new UserError('exec needs a command');
  const full = await instanceCommand(argv, opts);
  return runPassingExit(full, { stdio: opts.stdio, input: opts.input, env: opts.env, extendEnv: !opts.cleanEnv, timeoutMs: opts.timeoutMs });
}

/**
 * Run a ready argv (already wrapped for the instance or the client), never throwing on its exit:
 * the exit code passed through (124: timed out, 125: no code), the output as text.

 */
export async function runPassingExit(
  full: string[],
  o: { stdio?: 'inherit' | 'pipe'; input?: string; env?: Record<string, string>; extendEnv?: boolean; timeoutMs?: number },
): Promise<ExecResult> {
  const r = await execa(full[0]!, full.slice(1), {
    reject: false,
    ...(o.stdio === 'inherit' ? { stdio: 'inherit' as const } : o.input !== undefined ? { input: o.input } : { stdin: 'ignore' as const }),
    env: o.env,
    extendEnv: o.extendEnv,
    timeout: o.timeoutMs,
    stripFinalNewline: false,
  });
  return {
    exitCode: typeof r.exitCode === 'number' ? r.exitCode : r.timedOut ? 124 : 125,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' ? r.stderr : '',
  };
}

/**
 * Host path of the instance's root filesystem (/proc/<holder>/root). Fine for plain paths; an
 * absolute symlink in the instance (e.g. /var/lib/cloud/instance) resolves against the HOST's
 * root from there, so prefer readFileInInstance for such paths.
 */
export async function instanceRootPath(opts: LabOptions = {}): Promise<string> {
  return instanceRoot(await holderPid(opts.name));
}

export async function readFileInInstance(path: string, opts: LabOptions = {}): Promise<string> {
  return readInstanceFile(await holderPid(opts.name), path);
}

export async function writeFileInInstance(path: string, data: string, opts: LabOptions & { mode?: number } = {}): Promise<void> {
  await writeInstanceFile(await holderPid(opts.name), path, data, opts.mode);
}
