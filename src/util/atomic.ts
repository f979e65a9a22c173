/**
 * Atomic file writes (temp file in the same directory, fsync, rename): a reader sees the old file
 * or the new one, never half of either; a target that is a symlink (or a directory) is refused.
 */
import { open, rename, unlink, mkdir, lstat } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * A file we would replace is a symlink (or a directory; the bridge also refuses any other
 * non-regular file). Retrying cannot help; the event
 * that needed the write fails at once (src/pipeline/await-metadata.ts). The bridge's equivalent is the
 * BridgeError of kind 'UnsafePath'.
 */
export class UnsafePathError extends Error {
  readonly kind = 'UnsafePath';
  constructor(message: string) {
    super(message);
    this.name = 'UnsafePathError';
  }
}

/** Whether `e` is such a refusal (ours or the bridge's). */
export function isUnsafePath(e: unknown): boolean {
  return e instanceof Error && (e as { kind?: unknown }).kind === 'UnsafePath';
}

/**
 * Write a file so readers see either the old or the new content, never a mix:
 * temp file in the same directory, fsync, rename over, fsync the directory.
 * Refuses to replace a symlink (a planted link must not redirect a root write) or a directory.
 * The temp name, .<name>.<12 hex>.tmp, is one the start-up sweep
 * (src/util/sweep.ts) knows as ours.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  try {
    const st = await lstat(path);
    if (st.isSymbolicLink()) throw new UnsafePathError(`refusing to write ${path}: it is a symlink`);
    // rename() over a directory fails anyway; say why. (Other non-regular files are replaced by the
    // rename, never written through; the lab's overlay writes must keep working over whiteouts.)
    if (st.isDirectory()) throw new UnsafePathError(`refusing to write ${path}: it is a directory`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

export async function writeJsonAtomic(path: string, value: unknown, mode = 0o644): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n', mode);
}
