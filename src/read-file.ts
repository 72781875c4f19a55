// Reading a file the user names (a config, a `.env`, a `_FILE` secret) without trusting what it
// is: only a regular file is read, and only up to a size cap. A FIFO would block the read forever
// and /dev/zero would fill the memory; both are refused with one message, before any read.
import { close, closeSync, constants as fsConstants, fstat, fstatSync, open, openSync, read, readSync, type Stats } from 'node:fs';
import { promisify } from 'node:util';

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
  const fd = await fs.open(path, FLAGS);
  try {
    const bytes = new CappedBytes(path, await fs.fstat(fd), maxBytes);
    for (;;) {
      const room = bytes.room(); // first: it may grow the buffer
      const { bytesRead } = await fs.read(fd, bytes.buffer, bytes.length, room, bytes.length);
      if (!bytes.took(bytesRead)) return bytes.read();
    }
  } finally {
    await fs.close(fd);
  }
}

// node:fs's callbacks as promises. Not node:fs/promises: loading it (seven modules) took about
// 2 ms of every run's start, and reading the config was all a verification loaded it for.
const fs = { open: promisify(open), fstat: promisify(fstat), read: promisify(read), close: promisify(close) };

/** readRegularFile for synchronous callers (secret resolution). */
export function readRegularFileSync(path: string, maxBytes: number): Buffer {
  const fd = openSync(path, FLAGS);
  try {
    const bytes = new CappedBytes(path, fstatSync(fd), maxBytes);
    for (;;) {
      const room = bytes.room(); // first: it may grow the buffer
      if (!bytes.took(readSync(fd, bytes.buffer, bytes.length, room, bytes.length))) return bytes.read();
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The bytes read so far, in a buffer the size fstat gave plus one byte (a file that grew since is
 * caught), grown up to one byte past the cap if it did: not the cap's megabytes for every file.
 */
class CappedBytes {
  buffer: Buffer;
  length = 0;
  constructor(
    private readonly path: string,
    stats: Stats,
    private readonly maxBytes: number,
  ) {
    assertReadable(path, stats, maxBytes);
    this.buffer = Buffer.allocUnsafe(Math.min(stats.size, maxBytes) + 1);
  }
  /** Room for the next read, the buffer grown first if it is full. */
  room(): number {
    if (this.length === this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.buffer.length * 2, this.maxBytes + 1));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    return this.buffer.length - this.length;
  }
  /** Counts a read; false at the end of the file. */
  took(bytesRead: number): boolean {
    this.length += bytesRead;
    if (this.length > this.maxBytes) throw tooLarge(this.path, this.maxBytes);
    return bytesRead > 0;
  }
  read(): Buffer {
    return this.buffer.subarray(0, this.length);
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
