// A cross-process lock file, so that parallel `soma-ports` runs (two shells, two CI jobs on one
// runner) take turns on the registry and never hand out the same port.
//
// Hand-written rather than proper-lockfile: proper-lockfile only detects a dead holder by mtime
// staleness, so a holder killed with SIGKILL blocks every next run for the whole stale period.
// Here the lock file names its holder ({pid, hostname, startedAt, procStart}); a holder on this
// host whose pid is gone (or was reused by a process started at another time) is stale at once.
import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { readRegularFile } from '../read-file.js';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LockHolder {
  pid: number;
  hostname: string;
  startedAt: string;
  /** Start time of the process in clock ticks since boot (/proc/<pid>/stat field 22). */
  procStart?: string;
  token: string;
}

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
  constructor(
    readonly path: string,
    readonly holder: LockHolder | undefined,
    waitedMs: number,
  ) {
    const who = holder
      ? `pid ${holder.pid}${holder.hostname === hostname() ? '' : ` on ${holder.hostname}`} (since ${holder.startedAt})`
      : 'another process';
    super(`lock ${path} still held by ${who} after ${Math.round(waitedMs / 1000)} s`);
  }
}

export interface Lock {
  path: string;
  release(): Promise<void>;
  /** Synchronous release for exit handlers (SIGINT), where awaiting is not possible. */
  releaseSync(): void;
}

/** A lock file whose content is unreadable this long after creation was left by a crashed writer. */
const UNREADABLE_GRACE_MS = 2000;

function processStart(pid: number | 'self'): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19]; // field 22 of proc(5): starttime
  } catch {
    return undefined;
  }
}

function isAlive(holder: LockHolder): boolean {
  if (holder.hostname !== hostname()) return true; // cannot tell from here: assume alive
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: the pid exists but belongs to another user.
  }
  if (holder.procStart !== undefined) {
    const now = processStart(holder.pid);
    if (now !== undefined && now !== holder.procStart) return false; // pid reused by another process
  }
  return true;
}

async function readHolder(path: string): Promise<LockHolder | undefined | 'missing'> {
  let text: string;
  try {
    // A lock file is a few bytes of JSON; anything else (a FIFO would block) is a FileReadError.
    text = (await readRegularFile(path, 64 * 1024)).toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Partial<LockHolder>;
    if (typeof parsed.pid === 'number' && typeof parsed.hostname === 'string' && typeof parsed.token === 'string') {
      return parsed as LockHolder;
    }
  } catch {
    /* being written, or left half-written by a crash */
  }
  return undefined;
}

async function createExclusive(path: string, content: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(content);
  } catch (error) {
    // (a full disk: an empty lock file left behind would hold up every next run)
    await handle.close().catch(() => {});
    await unlink(path).catch(() => {});
    throw error;
  }
  await handle.close();
  return true;
}

async function ageMs(path: string): Promise<number> {
  try {
    return Date.now() - (await stat(path)).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Remove a stale lock, under a short-lived "break" lock so that two waiters that both saw the
 * same dead holder cannot remove each other's fresh lock. The break lock is held for a few
 * microseconds; one older than the grace period was left by a crash and is removed.
 */
async function breakStaleLock(path: string, stale: LockHolder | undefined): Promise<boolean> {
  const breaker = `${path}.break`;
  if (!(await createExclusive(breaker, String(process.pid)))) {
    if ((await ageMs(breaker)) > UNREADABLE_GRACE_MS) await unlink(breaker).catch(() => {});
    return false;
  }
  try {
    const now = await readHolder(path);
    const same = now === undefined ? stale === undefined : now !== 'missing' && now.token === stale?.token;
    if (same) await unlink(path).catch(() => {});
    return same;
  } finally {
    await unlink(breaker).catch(() => {});
  }
}

/**
 * Take the lock at `path`, waiting up to `timeoutMs` with small jittered retries. Throws
 * LockTimeoutError naming the holder when it is still held by a live process after that.
 */
export async function acquireLock(path: string, { timeoutMs = 10_000, signal }: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Lock> {
  const me: LockHolder = {
    pid: process.pid,
    hostname: hostname(),
    startedAt: new Date().toISOString(),
    token: randomBytes(8).toString('hex'),
  };
  const procStart = processStart('self');
  if (procStart !== undefined) me.procStart = procStart;
  const content = JSON.stringify(me);
  const began = Date.now();
  let lastHolder: LockHolder | undefined;

  for (;;) {
    signal?.throwIfAborted();
    if (await createExclusive(path, content)) break;
    const holder = await readHolder(path);
    if (holder === 'missing') continue; // released between our two calls: try again at once
    if (holder === undefined) {
      if ((await ageMs(path)) > UNREADABLE_GRACE_MS && (await breakStaleLock(path, undefined))) continue;
    } else if (!isAlive(holder)) {
      if (await breakStaleLock(path, holder)) continue;
    } else {
      lastHolder = holder;
    }
    if (Date.now() - began >= timeoutMs) throw new LockTimeoutError(path, lastHolder, Date.now() - began);
    await sleep(10 + Math.random() * 30, undefined, signal ? { signal } : {});
  }

  let released = false;
  const ownsLock = (text: string): boolean => {
    try {
      return (JSON.parse(text) as LockHolder).token === me.token;
    } catch {
      return false;
    }
  };
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      const text = await readFile(path, 'utf8').catch(() => '');
      if (ownsLock(text)) await unlink(path).catch(() => {});
    },
    releaseSync() {
      if (released) return;
      released = true;
      try {
        if (ownsLock(readFileSync(path, 'utf8'))) unlinkSync(path);
      } catch {
        /* already gone */
      }
    },
  };
}
