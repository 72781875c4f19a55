// Files like a system tool: writeFileAtomic (reports, .env, the registry) replaces regular files
// atomically with their owner and mode, writes into device nodes and FIFOs instead of replacing
// them, refuses a dangling symlink; readRegularFile reads only regular files, up to a cap.
// Run as root (CI and the development machine are): the owner test chowns to another user.
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chmod, chown, lstat, mkdtemp, open, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileReadError, readRegularFile, readRegularFileSync } from '../../src/read-file.js';
import { WriteRefusedError, writeFileAtomic } from '../../src/write-file.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'files-'));
  dirs.push(dir);
  return dir;
}

/** A FIFO at `path` (mkfifo(1): Node has no mkfifo). */
function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

describe('writeFileAtomic', () => {
  it('replaces the content, keeps the mode, writes through a symlink and leaves no temporary file', async () => {
    const dir = await tempDir();
    const path = join(dir, '.env');
    await writeFile(path, 'A=1\n');
    await chmod(path, 0o600);
    await writeFileAtomic(path, 'A=2\n');
    expect(await readFile(path, 'utf8')).toBe('A=2\n');
    expect((await stat(path)).mode & 0o777).toBe(0o600);

    const link = join(dir, 'link.env');
    await symlink(path, link);
    await writeFileAtomic(link, 'A=3\n');
    expect(await readFile(path, 'utf8')).toBe('A=3\n');
    expect(await readdir(dir)).toEqual(['.env', 'link.env']);
  });

  it('creates a missing file and fails clearly in a missing folder', async () => {
    const dir = await tempDir();
    await writeFileAtomic(join(dir, 'new.env'), 'X=1\n');
    expect(await readFile(join(dir, 'new.env'), 'utf8')).toBe('X=1\n');
    await expect(writeFileAtomic(join(dir, 'nope', '.env'), 'X=1\n')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it("keeps the owner and mode of a user's file when root rewrites it", async () => {
    const dir = await tempDir();
    const path = join(dir, 'report.txt');
    await writeFile(path, 'old\n');
    await chown(path, 1234, 2345);
    await chmod(path, 0o640);
    await writeFileAtomic(path, 'new\n');
    const after = await stat(path);
    expect([after.uid, after.gid, after.mode & 0o7777]).toEqual([1234, 2345, 0o640]);
    expect(await readFile(path, 'utf8')).toBe('new\n');
  });

  it('writes into a character device instead of replacing it', async () => {
    const dir = await tempDir();
    const device = join(dir, 'null');
    execFileSync('mknod', [device, 'c', '1', '3']); // a private /dev/null
    await writeFileAtomic(device, 'report\n');
    expect((await stat(device)).isCharacterDevice()).toBe(true);
    expect(await readdir(dir)).toEqual(['null']);
  });

  it('writes into a FIFO, where its reader gets the text, and leaves it a FIFO', async () => {
    const dir = await tempDir();
    const fifo = join(dir, 'pipe');
    mkfifo(fifo);
    const read = new Promise<string>((resolve, reject) => {
      let text = '';
      createReadStream(fifo, 'utf8')
        .on('data', (d) => (text += d))
        .on('end', () => resolve(text))
        .on('error', reject);
    });
    await writeFileAtomic(fifo, 'through the pipe\n');
    expect(await read).toBe('through the pipe\n');
    expect((await stat(fifo)).isFIFO()).toBe(true);
  });

  it('writes through /dev/fd/N into the file that descriptor holds, appending, never replacing it', async () => {
    const dir = await tempDir();
    const path = join(dir, 'opened-by-the-shell.txt');
    await writeFile(path, 'head\n');
    const inode = (await stat(path)).ino;
    const handle = await open(path, 'a'); // as `>> file` would
    try {
      await writeFileAtomic(`/dev/fd/${handle.fd}`, 'tail\n');
      await writeFileAtomic(`/proc/self/fd/${handle.fd}`, 'more\n');
    } finally {
      await handle.close();
    }
    expect(await readFile(path, 'utf8')).toBe('head\ntail\nmore\n');
    expect((await stat(path)).ino).toBe(inode);
  });

  it('refuses a dangling symlink, leaving the link as it was', async () => {
    const dir = await tempDir();
    const link = join(dir, '.env');
    await symlink(join(dir, 'gone', '.env'), link);
    const error = await writeFileAtomic(link, 'A=1\n').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WriteRefusedError);
    expect((error as Error).message).toBe(`${link} is a symlink to ${join(dir, 'gone', '.env')}, which does not exist; fix or remove the link`);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe(join(dir, 'gone', '.env'));
  });
});

describe('readRegularFile', () => {
  it('reads a regular file up to the cap, and refuses one over it', async () => {
    const dir = await tempDir();
    const path = join(dir, 'f');
    await writeFile(path, 'x'.repeat(100));
    expect((await readRegularFile(path, 100)).toString()).toBe('x'.repeat(100));
    expect(readRegularFileSync(path, 100).length).toBe(100);
    await expect(readRegularFile(path, 99)).rejects.toThrow(`${path} is larger than 99 bytes, the limit for this file`);
    expect(() => readRegularFileSync(path, 99)).toThrow(FileReadError);
  });

  it('reads a file whose size fstat does not know (procfs says 0) whole, and still stops at the cap', async () => {
    // /proc/self/maps is a regular file of size 0 with kilobytes in it: the buffer sized by fstat must grow.
    const whole = await readRegularFile('/proc/self/maps', 1024 * 1024);
    expect(whole.length).toBeGreaterThan(1000);
    expect(whole.toString()).toMatch(/^[0-9a-f]+-[0-9a-f]+ /);
    expect(readRegularFileSync('/proc/self/maps', 1024 * 1024).length).toBeGreaterThan(1000);
    await expect(readRegularFile('/proc/self/maps', 300)).rejects.toThrow('/proc/self/maps is larger than 300 bytes, the limit for this file');
    expect(() => readRegularFileSync('/proc/self/maps', 300)).toThrow(FileReadError);
  });

  it('refuses a FIFO with no writer at once instead of waiting on it', async () => {
    const dir = await tempDir();
    const fifo = join(dir, 'secret');
    mkfifo(fifo);
    await expect(readRegularFile(fifo, 1024)).rejects.toThrow(`${fifo} is a FIFO (named pipe), not a regular file`);
    expect(() => readRegularFileSync(fifo, 1024)).toThrow(`${fifo} is a FIFO (named pipe), not a regular file`);
  });

  it('refuses /dev/zero instead of reading it forever, and a folder', async () => {
    await expect(readRegularFile('/dev/zero', 1024)).rejects.toThrow('/dev/zero is a character device, not a regular file');
    expect(() => readRegularFileSync('/dev/zero', 1024)).toThrow(FileReadError);
    const dir = await tempDir();
    await expect(readRegularFile(dir, 1024)).rejects.toThrow(`${dir} is a folder, not a regular file`);
  });

  it('passes a missing file through as ENOENT', async () => {
    const dir = await tempDir();
    await expect(readRegularFile(join(dir, 'missing'), 10)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
