/** The record of the last apply (one file, rewritten atomically), for `hotplug status`. */
import { readFile } from 'node:fs/promises';
import { writeJsonAtomic } from '../util/atomic.js';
import { paths } from '../paths.js';

export interface LastApply {
  time: string;
  result: 'ok' | 'failed';
  duration_ms: number;
  refreshed: boolean;
  interfaces?: string[];
  error?: string;
}

export async function recordApply(rec: LastApply): Promise<void> {
  await writeJsonAtomic(paths.lastApplyJson, rec);
}

export async function readLastApply(): Promise<LastApply | null> {
  try {
    return JSON.parse(await readFile(paths.lastApplyJson, 'utf8')) as LastApply;
  } catch {
    return null;
  }
}
