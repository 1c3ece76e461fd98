import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes a folder so that readers see either nothing or all of it: `fill` writes into a temporary
 * sibling (same file system, so the rename is atomic), which is then renamed to `dir`. If `fill`
 * throws, the temporary folder is removed and `dir` is untouched.
 *
 * With `replace`, an existing `dir` is removed just before the rename; between the two a reader can
 * find no folder, never a partial one. Without it, an existing `dir` makes the rename fail.
 */
export async function writeDirAtomically(dir: string, fill: (tmp: string) => Promise<void>, options: { replace?: boolean } = {}): Promise<void> {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  await mkdir(parent, { recursive: true });
  const tmp = path.join(parent, `.${path.basename(target)}.tmp-${process.pid}-${Date.now()}`);
  await mkdir(tmp);
  try {
    await fill(tmp);
    if (options.replace) await rm(target, { recursive: true, force: true });
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
