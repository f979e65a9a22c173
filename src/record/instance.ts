/**
 * What the last bridge session knew about the instance (datasource, instance id, hotplug state,
 * the MACs in metadata), so that `hotplug status` can answer without starting Python and
 * importing cloud-init. Written atomically to /run/cloud-hotplug/instance.json whenever a session
 * opens cloud-init's cache (workers, the daemon, apply, refresh-metadata, query, status --live) and
 * after it stores a refreshed one.
 *
 * A record only describes the inputs it was made from: the stat identity (inode, size, mtime) of
 * obj.pkl and of the cloud config files cloud-init's hotplug decision reads is kept with it, and
 * readInstanceRecord() says it is stale as soon as any of them differs (cloud-init re-ran, a
 * new instance, an edited cloud.cfg.d). The identities are taken BEFORE opening the cache, so a
 * session that loaded an older cache can never leave a record that looks current.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Bridge, InstanceSummary, NetworkStackInfo } from '../../bridge/index.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';
import { paths } from '../paths.js';

/** The part of the bridge's summary that `status` reports. */
export type StatusSummary = Pick<InstanceSummary, 'datasource' | 'instance_id' | 'hotplug' | 'macs'> & Partial<Pick<InstanceSummary, 'metadata_static' | 'metadata_source'>>;

export interface InstanceRecord {
  /** When the summary was read from cloud-init (ISO). */
  time: string;
  /** The command whose session recorded it (worker, daemon, apply, refresh-metadata, query, status). */
  by: string;
  /** path → "inode:size:mtime" (null: absent) at the time of the read. */
  inputs: Record<string, string | null>;
  summary: StatusSummary;
  /** The renderer and activator cloud-init reported at the open (absent in records of older versions). */
  stack?: NetworkStackInfo | null;
}

/** Read by cloud-init's own config merge (22.4) besides obj.pkl; the bridge's cloud-init reads the real ones. */
const CLOUD_CFG = '/etc/cloud/cloud.cfg';
const CLOUD_CFG_D = '/etc/cloud/cloud.cfg.d';
const RUN_CFG = '/run/cloud-init/cloud.cfg';

function identity(p: string): string | null {
  try {
    const st = statSync(p);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return null;
  }
}

/** Stat identities of what the summary is derived from (a dozen stat calls, no reads). */
export function cloudInputs(objPkl: string = paths.objPkl): Record<string, string | null> {
  const files = [objPkl, join(dirname(objPkl), 'cloud-config.txt'), CLOUD_CFG, RUN_CFG];
  try {
    files.push(...readdirSync(CLOUD_CFG_D).filter((n) => n.endsWith('.cfg')).sort().map((n) => join(CLOUD_CFG_D, n)));
  } catch {
    /* no cloud.cfg.d */
  }
  return Object.fromEntries(files.map((f) => [f, identity(f)]));
}

/** Which command this process runs (for the record's `by`). */
function command(): string {
  return process.argv.slice(2).find((a) => !a.startsWith('-')) ?? 'unknown';
}

/** Writes the record; never fails the caller (a status record is not worth an event). */
export async function recordInstance(summary: StatusSummary, inputs: Record<string, string | null>, stack?: NetworkStackInfo | null): Promise<void> {
  if (!inputs[paths.objPkl]) return; // nothing that status could check it against later
  // A store() reports no stack: keep the one the last open reported.
  if (stack === undefined) {
    try {
      stack = (JSON.parse(readFileSync(paths.instanceRecordJson, 'utf8')) as InstanceRecord).stack ?? null;
    } catch {
      stack = null;
    }
  }
  const rec: InstanceRecord = {
    time: new Date().toISOString(),
    by: command(),
    inputs,
    summary: {
      datasource: summary.datasource,
      instance_id: summary.instance_id,
      hotplug: summary.hotplug,
      macs: summary.macs,
      ...(summary.metadata_source === undefined ? {} : { metadata_source: summary.metadata_source }),
      ...(summary.metadata_static === undefined ? {} : { metadata_static: summary.metadata_static }),
    },
    stack,
  };
  await writeJsonAtomic(paths.instanceRecordJson, rec, 0o644).catch((e) => log('debug', 'could not record the instance summary', { error: oneLine(e) }));
}

/** bridge.open() of cloud-init's cache, recording what it found (only for the real cache path). */
export async function openInstance(bridge: Bridge, objPkl: string = paths.objPkl): Promise<Awaited<ReturnType<Bridge['open']>>> {
  const inputs = objPkl === paths.objPkl ? cloudInputs(objPkl) : null;
  const opened = await bridge.open(objPkl);
  if (inputs) await recordInstance(opened.summary, inputs, opened.stack ?? null);
  return opened;
}

/** After bridge.store(): record the stored datasource's summary (store returns it). */
export async function recordStored(summary: StatusSummary): Promise<void> {
  try {
    await recordInstance(summary, cloudInputs());
  } catch (e) {
    log('debug', 'could not record the instance summary', { error: oneLine(e) });
  }
}

export type RecordCheck = { ok: true; record: InstanceRecord } | { ok: false; why: string };

/** The record, if there is one and cloud-init's inputs are still the ones it was made from. */
export function readInstanceRecord(): RecordCheck {
  let rec: InstanceRecord;
  try {
    rec = JSON.parse(readFileSync(paths.instanceRecordJson, 'utf8')) as InstanceRecord;
  } catch (e) {
    return { ok: false, why: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'nothing recorded' : `unreadable record: ${oneLine(e)}` };
  }
  const s = rec?.summary;
  if (typeof rec?.time !== 'string' || typeof rec.inputs !== 'object' || rec.inputs === null || typeof s?.hotplug?.enabled !== 'boolean' || !Array.isArray(s.macs)) {
    return { ok: false, why: 'unreadable record' };
  }
  const now = cloudInputs();
  for (const f of new Set([...Object.keys(now), ...Object.keys(rec.inputs)])) {
    if ((now[f] ?? null) !== (rec.inputs[f] ?? null)) return { ok: false, why: `record stale: ${f} changed since ${rec.time}` };
  }
  return { ok: true, record: rec };
}
