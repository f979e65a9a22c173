/**
 * The daemon's request protocol (pure), the same on every listener (unix socket, FIFO, TCP):
 * one JSON object per line each way.
 *
 *   → {"op":"kick"}                                   events were queued (the udev hook)
 *   ← {"ok":true,"op":"kick","queued":N}
 *   → {"op":"submit","kind":"apply","refresh":true,"dryRun":false}   a job (refresh/dryRun optional)
 *   → {"op":"submit","kind":"refresh"}
 *   ← {"ok":true,"op":"submit","job":{id,kind,state,…}}              at once
 *   → {"op":"wait","id":"ID"}                         then {"type":"job_progress",…} lines, and
 *   ← {"ok":true,"op":"wait","job":{…}}               when the job is done or failed
 *   → {"op":"jobs","limit":20}                        ← {"ok":true,"op":"jobs","jobs":[…]} oldest first
 *   → {"op":"apply","refresh":true,"dryRun":false}    submit + wait in one (defaults shown)
 *   ← {"ok":true,"op":"apply","result":{…}}
 *   → {"op":"refresh"}                                re-crawl metadata and store it (a job, waited for)
 *   ← {"ok":true,"op":"refresh","result":{…}}
 *   → {"op":"status"}                                 answered from memory, never waits on Python
 *   ← {"ok":true,"op":"status","status":{…}}
 *   → {"op":"subscribe"}                              then a stream of {"type":…} lines
 *   ← {"ok":true,"op":"subscribe"}
 *   → {"op":"ping"}                                   ← {"ok":true,"op":"ping","pid":N}
 *
 * Every request may carry "token" (the TCP listener requires it; others ignore it). Anything else
 * gets {"ok":false,"error":"…"} and the connection stays usable (a line longer than the listener's
 * limit closes it after the error). Requests on one connection are answered in order.
 */

export const MAX_LINE = 64 * 1024;

export type JobKind = 'apply' | 'refresh';

export type Request =
  | { op: 'kick'; id?: string }
  | { op: 'apply'; refresh: boolean; dryRun: boolean }
  | { op: 'refresh' }
  | { op: 'submit'; kind: 'apply'; refresh: boolean; dryRun: boolean }
  | { op: 'submit'; kind: 'refresh' }
  | { op: 'wait'; id: string }
  | { op: 'jobs'; limit: number }
  | { op: 'status' }
  | { op: 'subscribe' }
  | { op: 'ping' };

export type Op = Request['op'];

export type Parsed = { ok: true; req: Request; token?: string } | { ok: false; error: string; op?: string };

const OPS = ['kick', 'apply', 'refresh', 'submit', 'wait', 'jobs', 'status', 'subscribe', 'ping'] as const;
const KEYS: Record<(typeof OPS)[number], string[]> = {
  kick: ['op', 'id'],
  apply: ['op', 'refresh', 'dryRun'],
  refresh: ['op'],
  submit: ['op', 'kind', 'refresh', 'dryRun'],
  wait: ['op', 'id'],
  jobs: ['op', 'limit'],
  status: ['op'],
  subscribe: ['op'],
  ping: ['op'],
};

/** Ops that change nothing: what a TCP client without the token may use when so configured. */
export const READ_ONLY_OPS: readonly Op[] = ['status', 'ping', 'jobs', 'wait', 'subscribe'];

/** A job id as the daemon makes them (job-store.ts). */
export const JOB_ID_RE = /^[a-z0-9]{6,12}-[0-9a-f]{6}$/;

const show = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? s.slice(0, 40) + '…' : s;
};

function bools(o: Record<string, unknown>, op: string): string | null {
  for (const k of ['refresh', 'dryRun'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') return `${op}: ${k} must be true or false`;
  }
  return null;
}

export function parseRequest(line: string, maxLine = MAX_LINE): Parsed {
  if (line.length > maxLine) return { ok: false, error: `request longer than ${maxLine} bytes` };
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { ok: false, error: 'malformed request: not JSON (want one JSON object per line)' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, error: 'malformed request: not a JSON object' };
  const { token, ...o } = v as Record<string, unknown>;
  if (token !== undefined && (typeof token !== 'string' || token.length > 1024)) return { ok: false, error: 'malformed request: token must be a string' };
  const tok = token === undefined ? {} : { token: token as string };
  const op = o.op;
  if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op)) {
    return { ok: false, error: `unknown op ${show(op)} (known: ${OPS.join(', ')})` };
  }
  const fail = (error: string): Parsed => ({ ok: false, error, op });
  const known = KEYS[op as (typeof OPS)[number]];
  for (const k of Object.keys(o)) if (!known.includes(k)) return fail(`${op}: unknown key ${show(k)} (known: ${known.join(', ')}, token)`);
  switch (op) {
    case 'kick':
      if (o.id !== undefined && (typeof o.id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(o.id))) return fail('kick: id must be an event id');
      return { ok: true, req: { op, ...(o.id !== undefined ? { id: o.id as string } : {}) }, ...tok };
    case 'apply': {
      const e = bools(o, op);
      if (e) return fail(e);
      return { ok: true, req: { op, refresh: o.refresh !== false, dryRun: o.dryRun === true }, ...tok };
    }
    case 'submit': {
      if (o.kind === 'refresh') {
        if (o.refresh !== undefined || o.dryRun !== undefined) return fail('submit: refresh and dryRun are for kind apply');
        return { ok: true, req: { op, kind: 'refresh' }, ...tok };
      }
      if (o.kind !== 'apply') return fail(`submit: kind must be apply or refresh, not ${show(o.kind)}`);
      const e = bools(o, op);
      if (e) return fail(e);
      return { ok: true, req: { op, kind: 'apply', refresh: o.refresh !== false, dryRun: o.dryRun === true }, ...tok };
    }
    case 'wait':
      if (typeof o.id !== 'string' || !JOB_ID_RE.test(o.id)) return fail('wait: id must be a job id');
      return { ok: true, req: { op, id: o.id }, ...tok };
    case 'jobs': {
      const l = o.limit ?? 20;
      if (typeof l !== 'number' || !Number.isInteger(l) || l < 1 || l > 200) return fail('jobs: limit must be an integer between 1 and 200');
      return { ok: true, req: { op, limit: l }, ...tok };
    }
    default:
      return { ok: true, req: { op } as Request, ...tok };
  }
}
