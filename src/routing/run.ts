/**
 * Running `ip` (argv arrays only: values come from metadata) and reading files, injectable
 * so the routing code can be unit-tested and pointed at a network namespace.
 */
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';

export interface IpResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `ip …args` (the runner adds any netns selection) and never throws for a non-zero exit. */
export type IpRunner = (args: readonly string[]) => Promise<IpResult>;
/** File contents, or null when the file does not exist. */
export type FileReader = (path: string) => Promise<string | null>;

const NETNS_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * The host's `ip`, and `.batch`: `ip -4|-6 -force -batch -` with the lines on stdin (every line
 * runs, failures are reported per line; routing/apply.ts parses them).
 */
export function systemIp(opts: { netns?: string; timeoutMs?: number; bin?: string } = {}): IpRunner & { batch: (family: '-4' | '-6', lines: string[][]) => Promise<IpResult> } {
  if (opts.netns !== undefined && (!NETNS_RE.test(opts.netns) || opts.netns === '.' || opts.netns === '..')) {
    throw new Error(`invalid network namespace name ${JSON.stringify(opts.netns)}`);
  }
  const pre = opts.netns ? ['-n', opts.netns] : [];
  const run = async (args: readonly string[], input?: string): Promise<IpResult> => {
    const r = await execa(opts.bin ?? 'ip', [...pre, ...args], { reject: false, ...(input !== undefined ? { input } : { stdin: 'ignore' as const }), timeout: opts.timeoutMs ?? 15_000 });
    const exitCode = typeof r.exitCode === 'number' ? r.exitCode : 125;
    return { exitCode, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') || (r.failed && exitCode === 125 ? r.shortMessage ?? '' : '') };
  };
  return Object.assign((args: readonly string[]) => run(args), {
    batch: (family: '-4' | '-6', lines: string[][]) => run([family, '-force', '-batch', '-'], lines.map((l) => l.join(' ') + '\n').join('')),
  });
}

export const systemReadFile: FileReader = async (path) => {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
};

export class IpError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly result: IpResult,
  ) {
    super(`ip ${args.join(' ')} failed (exit ${result.exitCode}): ${(result.stderr || result.stdout).trim().split('\n')[0] ?? ''}`);
    this.name = 'IpError';
  }
}

/** `ip -N -json …args`, parsed (numbers for tables, protocols and scopes whatever names the system defines). */
export async function ipJson(ip: IpRunner, args: readonly string[]): Promise<unknown> {
  const full = ['-N', '-json', ...args];
  const r = await ip(full);
  if (r.exitCode !== 0) throw new IpError(full, r);
  const text = r.stdout.trim();
  if (text === '') return [];
  try {
    return JSON.parse(text);
  } catch {
    throw new IpError(full, { ...r, stderr: 'output is not JSON' });
  }
}
