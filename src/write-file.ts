// Writing a file the way a system tool does, for reports (`--output`), `.env` and the soma-ports
// registry: a regular file is replaced atomically and keeps its owner and mode; a device node or
// FIFO (`-o /dev/stdout`, `-o /dev/null`, a named pipe) is written into, never replaced; a symlink
// is written through, and a dangling one is refused rather than replaced by a file.
import { constants as fsConstants } from 'node:fs';
import { lstat, open, readlink, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A write refused before anything on disk changed; the message names the file and the reason. */
export class WriteRefusedError extends Error {
  override name = 'WriteRefusedError';
}

/**
 * Write `text` to `path`. A regular file (or a new one) is replaced atomically: a temporary file
 * in the same folder, fsync, rename over the target, fsync the folder; a reader (or a crash) sees
 * the old content or the new one, never a mix. The old file's owner and mode are kept, also when
 * root rewrites a user's file. Anything else that exists (a character or block device, a FIFO) is
 * opened and written in place, as a shell redirection would.
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const target = await resolveTarget(path);
  let existing;
  try {
    existing = await stat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (existing?.isDirectory()) throw Object.assign(new Error(`EISDIR: ${path} is a folder`), { code: 'EISDIR' });
  if (existing && !existing.isFile()) {
    // Replacing a special file would destroy it (as root, `-o /dev/null` would remove /dev/null).
    const handle = await open(target, fsConstants.O_WRONLY);
    try {
      await handle.writeFile(text, 'utf8');
    } finally {
      await handle.close();
    }
    return;
  }

  const folder = dirname(target);
  const temp = join(folder, `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const mode = existing ? existing.mode & 0o7777 : undefined;
  const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode ?? 0o666);
  try {
    try {
      if (existing && (existing.uid !== process.getuid?.() || existing.gid !== process.getgid?.())) {
        await handle.chown(existing.uid, existing.gid).catch((error: NodeJS.ErrnoException) => {
          throw new WriteRefusedError(
            `${path} belongs to uid ${existing.uid} gid ${existing.gid}; replacing it from this user would change its owner (${error.code})`,
          );
        });
      }
      // Explicit chmod, after chown (which clears set-id bits): open()'s mode is filtered by the
      // umask, the old file's mode is not.
      if (mode !== undefined) await handle.chmod(mode);
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
  await syncFolder(folder);
}

/** The file a write to `path` lands in: symlinks followed; a dangling symlink is refused. */
async function resolveTarget(path: string): Promise<string> {
  let link;
  try {
    link = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return path;
    throw error;
  }
  if (!link.isSymbolicLink()) return path;
  try {
    return await realpath(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const to = await readlink(path).catch(() => '?');
    throw new WriteRefusedError(`${path} is a symlink to ${to}, which does not exist; fix or remove the link`);
  }
}

async function syncFolder(folder: string): Promise<void> {
  // Makes the rename itself durable. Some filesystems refuse fsync on a directory: the rename has
  // still happened, so that is not a failure.
  let dir;
  try {
    dir = await open(folder, 'r');
    await dir.sync();
  } catch {
    /* best effort, see above */
  } finally {
    await dir?.close();
  }
}
