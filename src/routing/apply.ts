/**
 * Runs planned changes and says how each went: one `ip -force -batch -` per address family when
 * the runner can take a batch (systemIp can), else one `ip` per change (injected test runners).
 * A storm's reconcile then costs one process instead of one per rule, route and address.
 */
import { type Change, changeArgv, describeChange } from './change.js';
import { type IpRunner, type IpResult, systemIp } from './run.js';
import { log } from '../util/log.js';

export interface ApplyResult {
  change: Change;
  /** ok; exists (add found it already there); gone (del found nothing); failed. */
  status: 'ok' | 'exists' | 'gone' | 'failed';
  error?: string;
}

/** An `ip` runner that can also run a batch (lines of argv, no global options) under `-force`. */
export type BatchIpRunner = IpRunner & { batch?: (family: '-4' | '-6', lines: string[][]) => Promise<IpResult> };

/** How one change went, from its exit status and first error line. */
function judge(c: Change, ok: boolean, err: string, exitCode: number | string): ApplyResult {
  if (ok) return { change: c, status: 'ok' };
  if (c.op !== 'del' && /File exists/i.test(err)) return { change: c, status: 'exists' };
  if (c.op === 'del' && /No such (file|process|device)|Cannot assign requested address|Cannot find device|Address not found/i.test(err)) return { change: c, status: 'gone' };
  log('warn', 'routing change failed', { change: describeChange(c), error: err });
  return { change: c, status: 'failed', error: err || `exit ${exitCode}` };
}

/**
 * `ip -force -batch` reports a failed line as its error message(s) followed by "Command failed
 * -:N" (N counted from 1); lines without such a marker succeeded. Returns line → first error line.
 */
export function batchFailures(stderr: string): Map<number, string> {
  const out = new Map<number, string>();
  let pending: string[] = [];
  for (const line of stderr.split('\n')) {
    const m = /^Command failed -:(\d+)\s*$/.exec(line);
    if (m) {
      out.set(Number(m[1]), pending.find((l) => l.trim() !== '')?.trim() ?? 'failed');
      pending = [];
    } else pending.push(line);
  }
  return out;
}

/** Batch lines are split on blanks by ip: only argv without quoting trouble go into one. */
const batchable = (argv: string[]) => argv.every((a) => a !== '' && !/[\s"'\\#]/.test(a));

/** Runs the changes in order; a failure does not stop the rest. */
export async function applyPlan(changes: Change[], ip: BatchIpRunner = systemIp()): Promise<ApplyResult[]> {
  const argvs = changes.map(changeArgv);
  if (ip.batch && changes.length > 1 && argvs.every(batchable)) {
    // Every argv starts with its family (-4/-6), which a batch line cannot carry: one batch per
    // family, each in the planned order (the ordering constraints are within a family).
    const out: ApplyResult[] = new Array(changes.length);
    for (const fam of ['-4', '-6'] as const) {
      const idx = argvs.map((a, i) => (a[0] === fam ? i : -1)).filter((i) => i >= 0);
      if (!idx.length) continue;
      const r = await ip.batch(fam, idx.map((i) => argvs[i]!.slice(1)));
      const failed = batchFailures(r.stderr);
      // A batch that failed without naming a line (ip missing, killed): every change failed.
      const whole = r.exitCode !== 0 && failed.size === 0 ? (r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.exitCode}` : null;
      idx.forEach((i, n) => {
        const err = whole ?? failed.get(n + 1);
        out[i] = judge(changes[i]!, err === undefined, err ?? '', r.exitCode);
      });
    }
    return out;
  }
  const out: ApplyResult[] = [];
  for (let i = 0; i < changes.length; i++) {
    const r = await ip(argvs[i]!);
    const err = (r.stderr || r.stdout).trim().split('\n')[0] ?? '';
    out.push(judge(changes[i]!, r.exitCode === 0, err, r.exitCode));
  }
  return out;
}
