// Writing a file the way a system tool does, for reports (`--output`), `.env` and the soma-ports
// registry: a regular file is replaced atomically and keeps its owner and mode; a device node or
// FIFO (`-o /dev/null`, a named pipe) is written into, never replaced; a symlink
// is written through, and a dangling one is refused rather than replaced by a file. A link to one
// of this process's descriptors (`-o /dev/stdout`, /dev/fd/N) is written to that descriptor, even
// when it holds a regular file (`> report.txt`), whose inode the shell opened.
import { constants as fsConstants, write } from 'node:fs';
import { lstat, open, readlink, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

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
  const { target, descriptor, opened } = await resolveTarget(path);
  if (descriptor !== undefined) return writeToDescriptor(descriptor, text);
  let existing;
  try {
    existing = await stat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (existing?.isDirectory()) throw Object.assign(new Error(`EISDIR: ${path} is a folder`), { code: 'EISDIR' });
  if (existing && (opened || !existing.isFile())) {
    // Replacing a special file would destroy it (as root, `-o /dev/null` would remove /dev/null).
    const handle = await open(target, fsConstants.O_WRONLY | fsConstants.O_APPEND);
    try {
      await handle.writeFile(text, 'utf8');
    } finally {
      await handle.close();
    }
    return;
  }

  const folder = dirname(target);
  const temp = join(folder, `.${basename(target)}.${process.pid}.${process.getBuiltinModule('node:crypto').randomBytes(4).toString('hex')}.tmp`);
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

/** /proc/self/fd/1, /dev/fd/1 (what /dev/stdout points to): links to an open descriptor. */
const DESCRIPTOR_LINK = /^\/(?:proc\/(self|\d+)\/fd|dev\/fd)\/(\d+)$/;

/**
 * Write to one of this process's own descriptors, as given (`-o /dev/stdout`, `-o /dev/fd/3`):
 * reopening it would fail on a socket (ENXIO) and would not append to a `>>` file.
 */
async function writeToDescriptor(fd: number, text: string): Promise<void> {
  if (fd === 1 || fd === 2) {
    const stream = fd === 1 ? process.stdout : process.stderr;
    await new Promise<void>((resolveWrite, reject) => stream.write(text, (err) => (err ? reject(err) : resolveWrite())));
    return;
  }
  const bytes = Buffer.from(text, 'utf8');
  for (let done = 0; done < bytes.length; ) {
    done += await new Promise<number>((resolveWrite, reject) =>
      write(fd, bytes, done, bytes.length - done, null, (err, written) => (err ? reject(err) : resolveWrite(written))),
    );
  }
}

/**
 * The file a write to `path` lands in: symlinks followed one by one (so that a dangling one is
 * told apart and refused). A link to one of this process's descriptors gives its number; another
 * process's (/proc/PID/fd/N) is `opened`: written into like a device, never replaced.
 */
async function resolveTarget(path: string): Promise<{ target: string; descriptor?: number; opened?: boolean }> {
  let current = path;
  let firstHop: string | undefined;
  for (let hops = 0; hops < 40; hops++) {
    let link;
    try {
      link = await lstat(current);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      if (firstHop === undefined) return { target: path }; // a new file
      throw new WriteRefusedError(`${path} is a symlink to ${firstHop}, which does not exist; fix or remove the link`);
    }
    const fdLink = DESCRIPTOR_LINK.exec(current);
    if (fdLink) {
      const own = fdLink[1] === undefined || fdLink[1] === 'self' || fdLink[1] === String(process.pid);
      return own ? { target: path, descriptor: Number(fdLink[2]) } : { target: current, opened: true };
    }
    if (!link.isSymbolicLink()) return { target: current };
    const to = await readlink(current);
    firstHop ??= to;
    current = resolve(dirname(current), to);
  }
  throw Object.assign(new Error(`ELOOP: too many symlinks at ${path}`), { code: 'ELOOP' });
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
