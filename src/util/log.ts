/**
 * Structured, one-line logs on stderr (journald picks stderr up under systemd).
 * Every line carries the event fields it was given, e.g. action, iface, duration_ms.
 */
export type Fields = Record<string, string | number | boolean | undefined | null>;

let quiet = false;
export function setQuiet(q: boolean): void {
  quiet = q;
}

function fmt(fields: Fields): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => {
      const s = String(v);
      return /[\s"=]/.test(s) ? `${k}=${JSON.stringify(s)}` : `${k}=${s}`;
    })
    .join(' ');
}

export function log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Fields = {}): void {
  if (quiet && level !== 'error') return;
  if (level === 'debug' && !process.env.HOTPLUG_DEBUG) return;
  const rest = fmt(fields);
  process.stderr.write(`hotplug[${process.pid}] ${level}: ${msg}${rest ? ' ' + rest : ''}\n`);
}

/** Milliseconds since `start` (from performance.now()), rounded. */
export function since(start: number): number {
  return Math.round(performance.now() - start);
}
