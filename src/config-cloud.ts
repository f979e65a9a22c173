/**
 * The daemon's effective configuration: cloud-config's `cloud_hotplug:` key (user-data or
 * vendor-data, read through the bridge from cloud-init's merged config) under
 * /etc/cloud-hotplug/config.yaml, merged key by key (the file wins per leaf; a list is one leaf),
 * each validated the same way (config.ts) and then the merge; and where each setting came from.
 */
import { basename } from 'node:path';
import { readConfigDoc, validateConfig, type Config } from './config.js';
import { paths } from './paths.js';
import { UserError } from './util/errors.js';

export type Origin = 'default' | 'cloud-config' | 'config.yaml';

/** The name cloud-config errors carry (as `config.yaml:` does for the file). */
export const CLOUD_NAME = 'cloud-config cloud_hotplug';

/** What the bridge said about the key: read (maybe absent), or why it could not be read. */
export type CloudPart = { present: boolean; config: Record<string, unknown> | null; type: string } | { error: string };

export interface Effective {
  config: Config;
  /** Every setting (dotted path; a list or a {run} policy is one) → where its value came from. */
  origins: Record<string, Origin>;
  cloud: { state: 'read' | 'absent' | 'unavailable'; error?: string };
  file: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Leaf paths of a document (objects recursed; lists, scalars and null are leaves). */
function leaves(doc: unknown, at = '', out: string[] = []): string[] {
  if (!isObj(doc)) {
    if (at) out.push(at);
    return out;
  }
  for (const [k, v] of Object.entries(doc)) leaves(v, at ? `${at}.${k}` : k, out);
  return out;
}

/** `over` merged onto `under`, key by key; a leaf of `over` replaces whatever `under` had there. */
export function mergeDocs(under: unknown, over: unknown): unknown {
  // An empty section (`daemon:` alone is null in YAML) overrides nothing.
  if (isObj(under) && (over === null || over === undefined)) return under;
  if (!isObj(under) || !isObj(over)) return over === undefined ? under : over;
  const out: Obj = { ...under };
  for (const [k, v] of Object.entries(over)) out[k] = k in under ? mergeDocs(under[k], v) : v;
  return out;
}

/** Where each effective setting came from. */
export function originsOf(config: Config, cloudDoc: unknown, fileDoc: unknown): Record<string, Origin> {
  const fromCloud = new Set(leaves(cloudDoc));
  const fromFile = new Set(leaves(fileDoc));
  const given = (set: Set<string>, p: string) => {
    if (set.has(p)) return true;
    for (const l of set) if (p.startsWith(l + '.') || l.startsWith(p + '.')) return true;
    return false;
  };
  const out: Record<string, Origin> = {};
  const walk = (v: unknown, at: string) => {
    // A {run: argv} policy is one setting.
    if (isObj(v) && !('run' in v)) for (const [k, x] of Object.entries(v)) walk(x, at ? `${at}.${k}` : k);
    else out[at] = given(fromFile, at) ? 'config.yaml' : given(fromCloud, at) ? 'cloud-config' : 'default';
  };
  walk(config, '');
  return out;
}

/**
 * The effective config from the file's document and what the bridge read. A cloud part that
 * could not be read (no cache yet, bridge down) counts as absent; one that is invalid is an error,
 * exactly like an invalid file.
 */
export function effectiveConfig(fileDoc: unknown, cloud: CloudPart, file = paths.configFile): Effective {
  const fileName = basename(file);
  let cloudDoc: unknown = null;
  let state: Effective['cloud'] = { state: 'absent' };
  if ('error' in cloud) state = { state: 'unavailable', error: cloud.error };
  else if (cloud.present) {
    if (cloud.config === null && cloud.type !== 'NoneType') throw new UserError(`${CLOUD_NAME}: the document must be a mapping (got ${cloud.type})`);
    cloudDoc = cloud.config;
    state = { state: 'read' };
  }
  // Each part alone first, so an error names where the bad key is.
  validateConfig(cloudDoc, CLOUD_NAME);
  validateConfig(fileDoc, fileName);
  const config = validateConfig(mergeDocs(cloudDoc, fileDoc), `${fileName} over ${CLOUD_NAME}`);
  return { config, origins: originsOf(config, cloudDoc, fileDoc), cloud: state, file };
}

/** The file read now, with a cloud part. */
export async function loadEffective(file: string, cloud: CloudPart): Promise<Effective> {
  return effectiveConfig(await readConfigDoc(file), cloud, file);
}
