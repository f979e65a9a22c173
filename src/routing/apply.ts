/** Runs planned changes through the injected `ip` runner and says how each went. */
import { type Change, changeArgv, describeChange } from './change.js';
import { type IpRunner, systemIp } from './run.js';
import { log } from '../util/log.js';

export interface ApplyResult {
  change: Change;
  /** ok; exists (add found it already there); gone (del found nothing); failed. */
  status: 'ok' | 'exists' | 'gone' | 'failed';
  error?: string;
}

/** Runs each change in order; a failure does not stop the rest. */
export async function applyPlan(changes: Change[], ip: IpRunner = systemIp()): Promise<ApplyResult[]> {
  const out: ApplyResult[] = [];
  for (const c of changes) {
    const r = await ip(changeArgv(c));
    const err = (r.stderr || r.stdout).trim().split('\n')[0] ?? '';
    if (r.exitCode === 0) out.push({ change: c, status: 'ok' });
    else if (c.op !== 'del' && /File exists/i.test(err)) out.push({ change: c, status: 'exists' });
    else if (c.op === 'del' && /No such (file|process|device)|Cannot assign requested address|Cannot find device/i.test(err)) out.push({ change: c, status: 'gone' });
    else {
      out.push({ change: c, status: 'failed', error: err || `exit ${r.exitCode}` });
      log('warn', 'routing change failed', { change: describeChange(c), error: err });
    }
  }
  return out;
}
