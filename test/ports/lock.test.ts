// The cross-process lock: a holder killed with SIGKILL does not block the next run; a live
// holder makes the next run fail within its lock timeout, naming the holder's pid.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, makeWorkspace, parseAssign, ROOT, runCli, type Workspace } from './helpers.js';

const HOLDER = join(ROOT, 'test', 'ports', 'fixtures', 'hold-lock.mjs');
const children: ChildProcess[] = [];
const workspaces: Workspace[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(workspaces.splice(0).map((w) => w.cleanup()));
});

/** A child process that holds the lock of `stateDir`, resolved once it has it. */
async function lockHolder(stateDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [HOLDER, stateDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('lock holder did not take the lock within 10 s')), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('locked')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`lock holder exited early with ${code}`)));
  });
  return child;
}

describe('soma-ports lock', () => {
  it('recovers the lock of a process killed with SIGKILL while holding it', async () => {
    const ws = await makeWorkspace();
    workspaces.push(ws);
    const holder = await lockHolder(ws.stateDir);
    expect(existsSync(join(ws.stateDir, 'registry.lock'))).toBe(true);
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));

    // A lock timeout longer than the test timeout: passing proves the dead holder was detected,
    // not waited out.
    const result = await runCli(['assign', '--project', 'somabrain', '--json'], ws, { env: { SOMA_PORTS_LOCK_TIMEOUT_MS: '60000' } });
    expect(Object.keys(parseAssign(result).ports)).toHaveLength(9);
    expect(existsSync(join(ws.stateDir, 'registry.lock'))).toBe(false);
  });

  it('fails with exit 1 naming the pid of a live holder, within its lock timeout', async () => {
    const ws = await makeWorkspace();
    workspaces.push(ws);
    const holder = await lockHolder(ws.stateDir);
    const result = await runCli(['assign', '--project', 'somabrain'], ws, { env: { SOMA_PORTS_LOCK_TIMEOUT_MS: '1000' } });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^soma-ports: lock .*registry.lock still held by pid ${holder.pid} \\(since .*\\) after 1 s\\n$`));
    expect(result.ms).toBeLessThan(1000 + 8000); // its timeout plus a generous margin
    expect(existsSync(join(ws.cwd, '.env'))).toBe(false);
  });

  // Runs that waited for the lock read .env only once they hold it: what another run or an
  // editor wrote meanwhile is kept.
  it('two projects assigned into one .env while the lock is held both end up in it, with an edit made during the wait', async () => {
    const ws = await makeWorkspace();
    workspaces.push(ws);
    const env = join(ws.cwd, '.env');
    await writeFile(env, '# shared\nX=1\n');
    const holder = await lockHolder(ws.stateDir);
    const opts = { env: { SOMA_PORTS_LOCK_TIMEOUT_MS: '60000' }, timeoutMs: 30_000 };
    const runs = [runCli(['assign', '--project', 'somabrain', '--json'], ws, opts), runCli(['assign', '--project', 'somaagent01', '--json'], ws, opts)];
    // Both have started, read .env and are waiting (a Node start-up here is well under 1 s).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await appendFile(env, 'MY_EDIT=keep-me\n');
    holder.kill('SIGKILL');
    const results = await Promise.all(runs);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const text = await readFile(env, 'utf8');
    expect(text.startsWith('# shared\nX=1\nMY_EDIT=keep-me\n')).toBe(true);
    for (const r of results) {
      for (const [key, port] of Object.entries(parseAssign(r).ports)) expect(text).toContain(`${key}=${port}\n`);
    }
  });

  // In a mount namespace of its own (unshare -rm: no privileges needed, and the mount goes with
  // it), the state folder is a 64 KiB tmpfs filled to the last byte.
  it('a full disk in the state folder: one line naming the folder, exit 2, no lock file left, .env untouched', async () => {
    const ws = await makeWorkspace();
    workspaces.push(ws);
    await writeFile(join(ws.cwd, '.env'), 'X=1\n');
    const script = [
      'set -e',
      `mount -t tmpfs -o size=64k tmpfs "${ws.stateDir}"`,
      `dd if=/dev/zero of="${ws.stateDir}/fill" bs=4k 2>/dev/null || true`,
      `set +e; "${process.execPath}" "${BIN}" assign --project somabrain; echo "exit=$?"`,
      `ls -A "${ws.stateDir}"`,
    ].join('\n');
    const r = spawnSync('unshare', ['-rm', 'sh', '-c', script], { cwd: ws.cwd, env: { ...process.env, NO_COLOR: '1', SOMA_PORTS_STATE_DIR: ws.stateDir }, encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^soma-ports: cannot write the state folder ${ws.stateDir}: ENOSPC: no space left on device.*; nothing was changed\n$`));
    expect(r.stdout).toBe('exit=2\nfill\n');
    expect(await readFile(join(ws.cwd, '.env'), 'utf8')).toBe('X=1\n');
  });
});
