/**
 * The lab's config drive: the `config-2` files Nova writes once at boot, as a directory in the
 * instance where cloud-init's ConfigDrive datasource looks first (its seed dir). Never rewritten
 * by an attach, as on a real cloud; the metadata service keeps answering beside it.
 */
import type { MetadataModel } from './metadata.js';
import { configDriveFiles } from './openstack-md.js';
import { writeInstanceFile } from './instance.js';

/** cloud-init's seed_dir/config_drive (checked before /config-drive and before block devices). */
export const CONFIG_DRIVE_DIR = '/var/lib/cloud/seed/config_drive';

export async function writeConfigDrive(holderPid: number, model: MetadataModel): Promise<string[]> {
  const files = configDriveFiles(model);
  for (const [rel, body] of Object.entries(files)) await writeInstanceFile(holderPid, `${CONFIG_DRIVE_DIR}/${rel}`, body, 0o644);
  return Object.keys(files);
}
