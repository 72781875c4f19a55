// Reading a file the user names (a config, a `.env`, a `_FILE` secret) without trusting what it
// is: only a regular file is read, and only up to a size cap. A FIFO would block the read forever
// and /dev/zero would fill the memory; both are refused with one message, before any read.
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';

/** The file is not one we read: not a regular file, or over the cap. The message names both. */
export class FileReadError extends Error {
  override name = 'FileReadError';
}

export const MiB = 1024 * 1024;

/** A CA bundle, certificate or key named by a `tls`/`ssl` option. */
export const CERT_FILE_MAX_BYTES = MiB;

// O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer; a regular file ignores it.
const FLAGS = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK;

/** The bytes of the regular file `path`, at most `maxBytes`. Errors from open (ENOENT...) pass through. */
export async function readRegularFile(path: string, maxBytes: number): Promise<Buffer> {
  const handle = await open(path, FLAGS);
  try {
    assertReadable(path, await handle.stat(), maxBytes);
    // Read one byte past the cap: a file that grew since fstat is caught too.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw tooLarge(path, maxBytes);
    }
    return buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}

/** readRegularFile for synchronous callers (secret resolution). */
export function readRegularFileSync(path: string, maxBytes: number): Buffer {
  const fd = openSync(path, FLAGS);
  try {
    assertReadable(path, fstatSync(fd), maxBytes);
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const bytesRead = readSync(fd, buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw tooLarge(path, maxBytes);
    }
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

function assertReadable(path: string, stats: Stats, maxBytes: number): void {
  if (!stats.isFile()) throw new FileReadError(`${path} is ${describeType(stats)}, not a regular file`);
  if (stats.size > maxBytes) throw tooLarge(path, maxBytes);
}

function tooLarge(path: string, maxBytes: number): FileReadError {
  return new FileReadError(`${path} is larger than ${formatBytes(maxBytes)}, the limit for this file`);
}

function describeType(stats: Stats): string {
  if (stats.isDirectory()) return 'a folder';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'a special file';
}

function formatBytes(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} bytes`;
}
