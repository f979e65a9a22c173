/**
 * One line per handled event: to stderr (journal) via log(), appended as JSON to the
 * log file under /var/log, and kept in a short recent list for `hotplug status`.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeJsonAtomic } from '../util/atomic.js';
import { log } from '../util/log.js';
import { paths } from '../paths.js';

export interface EventRecord {
  action: 'add' | 'remove';
  iface: string;
  mac?: string;
  result: 'configured' | 'removed' | 'ignored' | 'skipped' | 'failed';
  reason?: string;
  crawls: number;
  probes: number;
  /** From the kernel event (queued time) to done. */
  duration_ms: number;
  time: string;
}

const recentFile = () => join(paths.runDir, 'recent-events.json');
const KEEP = 50;

export async function recordEvent(rec: EventRecord): Promise<void> {
  const level = rec.result === 'failed' ? 'error' : rec.result === 'ignored' || rec.result === 'skipped' ? 'warn' : 'info';
  log(level, `event ${rec.action} ${rec.result}`, {
    action: rec.action,
    iface: rec.iface,
    mac: rec.mac,
    result: rec.result,
    reason: rec.reason,
    crawls: rec.crawls,
    probes: rec.probes,
    duration_ms: rec.duration_ms,
  });
  try {
    await mkdir(dirname(paths.logFile), { recursive: true });
    await appendFile(paths.logFile, JSON.stringify(rec) + '\n', { mode: 0o640 });
    const recent = await recentEvents();
    recent.push(rec);
    await writeJsonAtomic(recentFile(), recent.slice(-KEEP), 0o644);
  } catch (e) {
    log('warn', 'could not record event', { error: (e as Error).message });
  }
}

export async function recentEvents(): Promise<EventRecord[]> {
  try {
    const v = JSON.parse(await readFile(recentFile(), 'utf8'));
    return Array.isArray(v) ? (v as EventRecord[]) : [];
  } catch {
    return [];
  }
}
