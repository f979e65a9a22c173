/**
 * The daemon's socket protocol (pure): one JSON object per line each way.
 *
 *   → {"op":"kick"}                                   events were queued (the udev hook)
 *   ← {"ok":true,"op":"kick","queued":N}
 *   → {"op":"apply","refresh":true,"dryRun":false}    both optional (defaults shown)
 *   ← {"ok":true,"op":"apply","result":{…}}           when done (under the apply lock)
 *   → {"op":"refresh"}                                re-crawl metadata and store it
 *   ← {"ok":true,"op":"refresh","result":{…}}
 *   → {"op":"status"}                                 answered from memory, never waits on Python
 *   ← {"ok":true,"op":"status","status":{…}}
 *   → {"op":"subscribe"}                              then a stream of {"type":…} lines
 *   ← {"ok":true,"op":"subscribe"}
 *   → {"op":"ping"}                                   ← {"ok":true,"op":"ping","pid":N}
 *
 * Anything else gets {"ok":false,"error":"…"} and the connection stays usable (a line longer
 * than MAX_LINE closes it after the error). Requests on one connection are answered in order.
 */

export const MAX_LINE = 64 * 1024;

export type Request =
  | { op: 'kick'; id?: string }
  | { op: 'apply'; refresh: boolean; dryRun: boolean }
  | { op: 'refresh' }
  | { op: 'status' }
  | { op: 'subscribe' }
  | { op: 'ping' };

export type Parsed = { ok: true; req: Request } | { ok: false; error: string };

const OPS = ['kick', 'apply', 'refresh', 'status', 'subscribe', 'ping'] as const;
const KEYS: Record<(typeof OPS)[number], string[]> = {
  kick: ['op', 'id'],
  apply: ['op', 'refresh', 'dryRun'],
  refresh: ['op'],
  status: ['op'],
  subscribe: ['op'],
  ping: ['op'],
};

const show = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? s.slice(0, 40) + '…' : s;
};

export function parseRequest(line: string): Parsed {
  if (line.length > MAX_LINE) return { ok: false, error: `request longer than ${MAX_LINE} bytes` };
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { ok: false, error: 'malformed request: not JSON (want one JSON object per line)' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, error: 'malformed request: not a JSON object' };
  const o = v as Record<string, unknown>;
  const op = o.op;
  if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op)) {
    return { ok: false, error: `unknown op ${show(op)} (known: ${OPS.join(', ')})` };
  }
  const known = KEYS[op as (typeof OPS)[number]];
  for (const k of Object.keys(o)) if (!known.includes(k)) return { ok: false, error: `${op}: unknown key ${show(k)} (known: ${known.join(', ')})` };
  switch (op) {
    case 'kick':
      if (o.id !== undefined && (typeof o.id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(o.id))) return { ok: false, error: 'kick: id must be an event id' };
      return { ok: true, req: { op, ...(o.id !== undefined ? { id: o.id as string } : {}) } };
    case 'apply': {
      for (const k of ['refresh', 'dryRun'] as const) {
        if (o[k] !== undefined && typeof o[k] !== 'boolean') return { ok: false, error: `apply: ${k} must be true or false` };
      }
      return { ok: true, req: { op, refresh: o.refresh !== false, dryRun: o.dryRun === true } };
    }
    default:
      return { ok: true, req: { op } as Request };
  }
}
