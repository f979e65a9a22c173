/**
 * cloud-init's own hotplug hook, kept out of the way. `install --replace-cloud-init-hook` moves
 * its udev rule aside; but cloud-init's install_hotplug module (PER_INSTANCE, listed in Debian's
 * cloud.cfg) writes the rule again at an instance's first boot, after the package was installed.
 * The boot replay (`worker --boot`) therefore re-asserts the choice recorded in the manifest.
 */
import { existsSync } from 'node:fs';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { writeJsonAtomic } from '../util/atomic.js';
import { CLOUD_INIT_RULES, MANIFEST, type Manifest } from './files.js';

export const DISABLED_SUFFIX = '.disabled-by-cloud-hotplug';

export async function readManifest(root: string): Promise<Manifest | null> {
  try {
    return JSON.parse(await readFile(join(root, MANIFEST), 'utf8')) as Manifest;
  } catch {
    return null;
  }
}

export async function reloadUdev(root: string): Promise<void> {
  if (root !== '/') return;
  await execa('udevadm', ['control', '--reload-rules'], { reject: false });
}

/** Renames every present cloud-init hotplug rule to *.disabled-by-cloud-hotplug, recording it in `m`. */
export async function moveAsideUpstreamRules(root: string, m: Manifest): Promise<string[]> {
  const said: string[] = [];
  for (const r of CLOUD_INIT_RULES) {
    if (!existsSync(join(root, r))) continue;
    // A newer copy replaces an older moved-aside one: uninstall restores the newest.
    await rename(join(root, r), join(root, r + DISABLED_SUFFIX));
    if (!m.moved.some(([o]) => o === r)) m.moved.push([r, r + DISABLED_SUFFIX]);
    said.push(`disabled cloud-init's hotplug rule: /${r} -> /${r}${DISABLED_SUFFIX}`);
  }
  return said;
}

/** Installs made before the manifest recorded the choice: masking cloud-init's socket implied it. */
const replaces = (m: Manifest) => m.replace_cloud_init_hook ?? m.masked.length > 0;

/**
 * If this host was installed with --replace-cloud-init-hook and cloud-init has written its rule
 * since, move it aside again and reload udev. Returns what it did (empty: nothing to do).
 */
export async function reassertReplacement(root = '/'): Promise<string[]> {
  const m = await readManifest(root);
  if (!m || !replaces(m)) return [];
  const said = await moveAsideUpstreamRules(root, m);
  if (!said.length) return [];
  await writeJsonAtomic(join(root, MANIFEST), m, 0o644);
  await reloadUdev(root);
  return said;
}
