/**
 * cloud-init's boot state, read from the files it writes under /run/cloud-init
 * (the same files `cloud-init status` reads): result.json appears when boot finished.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { paths } from '../paths.js';

export type BootStatus = 'not-started' | 'running' | 'done' | 'error';

export interface BootState {
  status: BootStatus;
  datasource: string | null;
  errors: string[];
  stage: string | null;
}

async function readJson(p: string): Promise<any | null> {
  try {
    return JSON.parse(await readFile(p, 'utf8'));
  } catch {
    return null;
  }
}

export function bootFinished(): boolean {
  return existsSync(paths.cloudInitResult);
}

export async function bootState(): Promise<BootState> {
  const status = (await readJson(paths.cloudInitStatus))?.v1 ?? null;
  const result = (await readJson(paths.cloudInitResult))?.v1 ?? null;
  const errors: string[] = [];
  if (status) {
    for (const stage of ['init-local', 'init', 'modules-config', 'modules-final']) {
      for (const e of status[stage]?.errors ?? []) errors.push(`${stage}: ${e}`);
    }
  }
  for (const e of result?.errors ?? []) if (!errors.some((x) => x.endsWith(String(e)))) errors.push(String(e));
  const datasource = (result?.datasource ?? status?.datasource ?? null) as string | null;
  let s: BootStatus;
  if (result) s = errors.length ? 'error' : 'done';
  else if (status) s = 'running';
  else s = 'not-started';
  return { status: s, datasource, errors, stage: status?.stage ?? null };
}
