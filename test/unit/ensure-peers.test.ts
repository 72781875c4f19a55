// `npm test` brings up what the suite needs (test/support/ensure-peers.mjs, its pretest): the
// decision rule, and the script itself run as a user who cannot install kcat, who must get the
// exact command within a second instead of a failing Kafka test minutes later.
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without type declarations
import { commandsFor, decide, inPath } from '../support/ensure-peers.mjs';

const SCRIPT = resolve(fileURLToPath(import.meta.url), '../../support/ensure-peers.mjs');
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/**
 * The script as another user sees it: a copy in a folder anyone can read (it imports nothing of
 * the project), since the checkout may sit in a folder only its owner can enter (mktemp -d).
 */
async function readableCopy(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ensure-peers-script-'));
  dirs.push(dir);
  await chmod(dir, 0o755);
  const copy = join(dir, 'ensure-peers.mjs');
  await copyFile(SCRIPT, copy);
  await chmod(copy, 0o644);
  return copy;
}

async function run(env: Record<string, string>, uid?: number): Promise<{ code: number | null; stderr: string; ms: number }> {
  const script = uid === undefined ? SCRIPT : await readableCopy();
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [script], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(uid === undefined ? {} : { uid, gid: uid }),
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ensure-peers did not exit within 10 s; stderr: ${stderr}`));
    }, 10_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stderr, ms: performance.now() - started });
    });
  });
}

describe('ensure-peers', () => {
  const has = (tools: string[]) => (tool: string) => tools.includes(tool);

  it('starts or installs what is missing as root with the tool at hand, else asks for the command', () => {
    const allUp = { postgresUp: true, redisUp: true, kcatFound: true };
    expect(decide({ ...allUp, root: false, has: has([]) })).toEqual({ run: [], ask: [] });
    expect(decide({ postgresUp: false, redisUp: false, kcatFound: false, root: true, has: has(['pg_ctlcluster', 'redis-server', 'apt-get']) })).toEqual({
      run: ['postgres', 'redis', 'kcat'],
      ask: [],
    });
    expect(decide({ ...allUp, kcatFound: false, root: false, has: has(['apt-get']) })).toEqual({ run: [], ask: ['kcat'] });
    expect(decide({ ...allUp, redisUp: false, kcatFound: false, root: true, has: has(['apt-get']) })).toEqual({ run: ['kcat'], ask: ['redis'] });
  });

  it('gives the documented commands', () => {
    expect(commandsFor('15')).toEqual({
      postgres: 'pg_ctlcluster --skip-systemctl-redirect 15 main start',
      redis:
        'mkdir -p /var/lib/redis /var/log/redis && redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log',
      kcat: 'apt-get update && apt-get install -y kcat',
    });
  });

  it('finds a tool only as an executable in PATH', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ensure-peers-'));
    dirs.push(dir);
    await writeFile(join(dir, 'kcat'), '#!/bin/sh\n');
    expect(inPath('kcat', dir)).toBe(false); // not executable yet
    await chmod(join(dir, 'kcat'), 0o755);
    expect(inPath('kcat', `/nonexistent:${dir}`)).toBe(true);
  });

  it('run without kcat in PATH and without root, stops within a second naming the command (Postgres and Redis are up)', async () => {
    const r = await run({ PATH: '/nonexistent' }, 65534);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'ensure-peers: the test suite needs what is missing below; run, as root:\n' +
        '  kcat (librdkafka mock Kafka): apt-get update && apt-get install -y kcat\n' +
        'then npm test again.\n',
    );
    expect(r.ms).toBeLessThan(1000 + 2000); // its first second, plus Node's start-up on a busy machine
  });

  it('with every peer present it does nothing and exits 0', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ensure-peers-'));
    dirs.push(dir);
    await writeFile(join(dir, 'kcat'), '#!/bin/sh\nexit 0\n');
    await chmod(join(dir, 'kcat'), 0o755);
    await chmod(dir, 0o755); // mkdtemp's 0700 would hide it from the other user
    const r = await run({ PATH: dir }, 65534);
    expect(r).toMatchObject({ code: 0, stderr: '' });
  });
});
