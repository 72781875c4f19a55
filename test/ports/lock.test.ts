// The cross-process lock: a holder killed with SIGKILL does not block the next run; a live
// holder makes the next run fail within its lock timeout, naming the holder's pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkspace, parseAssign, ROOT, runCli, type Workspace } from './helpers.js';

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
});
